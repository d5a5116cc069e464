/**
 * What a session's grants (from its token's `grants` claim) allow, checked where an action
 * lands — at the gateway, before anything goes to the rooms service or a media node. A
 * refused action gets PERMISSION_DENIED and has no effect.
 */
import {
  ProtocolError,
  type MediaAction,
  type MediaActionData,
  type SessionGrants,
} from '@switchboard/protocol';

function deny(what: string): never {
  throw new ProtocolError('PERMISSION_DENIED', what);
}

/** Throws PERMISSION_DENIED when `grants` do not allow the (validated) media action. */
export function authorizeMedia<A extends MediaAction>(
  grants: SessionGrants,
  action: A,
  data: MediaActionData<A>,
): void {
  switch (action) {
    case 'createWebRtcTransport': {
      const d = data as MediaActionData<'createWebRtcTransport'>;
      if (d.direction === 'recv' && !grants.subscribe) deny('may not subscribe');
      if (d.direction === 'send' && !grants.publish && !grants.data) deny('may not publish');
      return;
    }
    case 'createPlainTransport': {
      const d = data as MediaActionData<'createPlainTransport'>;
      if (d.direction === 'send' && (grants.role !== 'broadcaster' || !grants.publish)) {
        deny('plain RTP sending needs the broadcaster role');
      }
      if (d.direction === 'recv' && (grants.role !== 'recorder' || !grants.subscribe)) {
        deny('plain RTP receiving needs the recorder role');
      }
      return;
    }
    case 'connectPlainTransport':
      if (grants.role === 'member') deny('plain RTP needs the recorder or broadcaster role');
      return;
    case 'produce': {
      const d = data as MediaActionData<'produce'>;
      if (!grants.publish) deny('may not publish');
      // The media node's own default when the client names no source.
      const source = d.source ?? (d.kind === 'audio' ? 'microphone' : 'camera');
      if (!grants.sources.includes(source)) deny(`may not publish ${source}`);
      return;
    }
    case 'resumeProducer':
      if (!grants.publish) deny('may not publish');
      return;
    case 'produceData':
      if (!grants.data) deny('may not publish data');
      return;
    default:
      return;
  }
}

/** Peer-to-peer signaling (exchangeSdp, exchangeCandidate) shows the sender to its peer. */
export function authorizePeerSignaling(grants: SessionGrants): void {
  if (grants.hidden) deny('a hidden member does not signal to peers');
}
