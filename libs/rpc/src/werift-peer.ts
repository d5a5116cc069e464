/**
 * RtcPeer over werift's RTCPeerConnection (pure TypeScript WebRTC: Node agents, tests).
 *
 * werift's own default ICE configuration asks Google's STUN server; here there is none unless
 * the caller gives `iceServers`.
 */
import { DEFAULT_CHANNEL_MESSAGE_BYTES } from '@switchboard/protocol';
import { RTCPeerConnection, type PeerConfig, type RTCDataChannel } from 'werift';
import { Listeners } from './events.ts';
import type {
  IceCandidateInit,
  PeerConnectionState,
  PeerDataChannel,
  RtcPeer,
  RtcPeerEvents,
  SessionDescriptionInit,
} from './peer.ts';
import { WeriftChannel } from './werift-channel.ts';

/**
 * Host candidates on 127.0.0.1 only, no STUN: two peers in one process or on one machine
 * (tests, benchmarks). Pair with `isLoopbackCandidate` on the signaling side.
 */
export const LOOPBACK_CONFIG: Partial<PeerConfig> = {
  iceServers: [],
  iceUseIpv6: false,
  iceUseTcp: false,
  // Every socket is bound to 127.0.0.1, and 127.0.0.1 is gathered besides the interfaces.
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
  iceFilterCandidatePair: (pair) =>
    pair.localCandidate.host === '127.0.0.1' && pair.remoteCandidate.host === '127.0.0.1',
};

/** Whether a trickled candidate is a 127.0.0.1 host candidate. */
export function isLoopbackCandidate(c: IceCandidateInit): boolean {
  return / 127\.0\.0\.1 \d+ typ host/.test(c.candidate ?? '');
}

export class WeriftPeer implements RtcPeer {
  readonly pc: RTCPeerConnection;
  readonly #events: Listeners<RtcPeerEvents>;
  readonly #subscriptions: { unSubscribe: () => void }[];

  constructor(
    config: Partial<PeerConfig> = {},
    onError: (err: unknown) => void = (err) => {
      console.error('RtcPeer listener failed:', err);
    },
  ) {
    this.pc = new RTCPeerConnection({ iceServers: [], ...config });
    this.#events = new Listeners(onError);
    this.#subscriptions = [
      this.pc.onIceCandidate.subscribe((c) => {
        if (c !== undefined) this.#events.emit('icecandidate', c.toJSON());
      }),
      this.pc.onDataChannel.subscribe((dc) => {
        this.#events.emit('datachannel', this.#wrap(dc));
      }),
      this.pc.connectionStateChange.subscribe((state) => {
        this.#events.emit('connectionstatechange', state);
      }),
    ];
  }

  get connectionState(): PeerConnectionState {
    return this.pc.connectionState;
  }

  get maxMessageSize(): number {
    // werift refuses to send more than the remote side's max-message-size.
    return this.pc.sctp?.remoteMaxMessageSize ?? DEFAULT_CHANNEL_MESSAGE_BYTES;
  }

  createDataChannel(label: string): PeerDataChannel {
    return this.#wrap(this.pc.createDataChannel(label, { ordered: true }));
  }

  async createOffer(): Promise<SessionDescriptionInit> {
    const { type, sdp } = await this.pc.createOffer();
    return { type, sdp };
  }

  async createAnswer(): Promise<SessionDescriptionInit> {
    const { type, sdp } = await this.pc.createAnswer();
    return { type, sdp };
  }

  async setLocalDescription(description: SessionDescriptionInit): Promise<void> {
    if (description.type === 'rollback') await this.pc.setLocalDescription({ type: 'rollback' });
    else await this.pc.setLocalDescription({ type: description.type, sdp: description.sdp ?? '' });
  }

  async setRemoteDescription(description: SessionDescriptionInit): Promise<void> {
    await this.pc.setRemoteDescription({ type: description.type, sdp: description.sdp ?? '' });
  }

  async addIceCandidate(candidate: IceCandidateInit): Promise<void> {
    await this.pc.addIceCandidate({
      candidate: candidate.candidate ?? '',
      sdpMid: candidate.sdpMid ?? undefined,
      sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
      usernameFragment: candidate.usernameFragment ?? undefined,
    });
  }

  on<K extends keyof RtcPeerEvents>(
    event: K,
    listener: (value: RtcPeerEvents[K]) => void,
  ): () => void {
    return this.#events.on(event, listener);
  }

  async close(): Promise<void> {
    for (const s of this.#subscriptions) s.unSubscribe();
    this.#events.clear();
    await this.pc.close();
  }

  #wrap(dc: RTCDataChannel): PeerDataChannel {
    // A getter: the offerer's channel exists before the answer says the remote's size.
    const size = (): number => this.maxMessageSize;
    return {
      channel: new WeriftChannel(dc),
      label: dc.label,
      get maxMessageSize() {
        return size();
      },
    };
  }
}
