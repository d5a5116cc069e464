/**
 * A peer connection as the SDK needs it to open RPC channels, W3C-shaped, small enough to
 * implement over the browser's RTCPeerConnection (BrowserPeer) and werift's (WeriftPeer,
 * in `@switchboard/rpc/werift`). Signaling is the caller's: it carries the descriptions and
 * the trickled candidates between the two sides.
 */
import type { DataChannelLike } from './channel.ts';

export type PeerConnectionState =
  'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/** RTCSessionDescriptionInit. */
export interface SessionDescriptionInit {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback';
  sdp?: string;
}

/** RTCIceCandidateInit. */
export interface IceCandidateInit {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** A data channel with what the RPC runtime must know of it. */
export interface PeerDataChannel {
  channel: DataChannelLike;
  label: string;
  /**
   * The remote side's max-message-size (64 KiB until negotiated or when the SDP did not say;
   * 0: unlimited). Read it once the channel is open.
   */
  readonly maxMessageSize: number;
}

export interface RtcPeerEvents {
  /** A local candidate to send to the other side (trickle ICE). */
  icecandidate: IceCandidateInit;
  /** A data channel the other side opened. */
  datachannel: PeerDataChannel;
  connectionstatechange: PeerConnectionState;
}

export interface RtcPeer {
  readonly connectionState: PeerConnectionState;
  /** A reliable, ordered channel (what RPC needs). */
  createDataChannel(label: string): PeerDataChannel;
  createOffer(): Promise<SessionDescriptionInit>;
  createAnswer(): Promise<SessionDescriptionInit>;
  setLocalDescription(description: SessionDescriptionInit): Promise<void>;
  setRemoteDescription(description: SessionDescriptionInit): Promise<void>;
  addIceCandidate(candidate: IceCandidateInit): Promise<void>;
  /** The remote max-message-size, once negotiated (64 KiB before; 0: unlimited). */
  readonly maxMessageSize: number;
  on<K extends keyof RtcPeerEvents>(
    event: K,
    listener: (value: RtcPeerEvents[K]) => void,
  ): () => void;
  /** Close the connection and its channels; listeners are dropped. */
  close(): Promise<void>;
}
