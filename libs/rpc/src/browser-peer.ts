/**
 * RtcPeer over the browser's RTCPeerConnection. RTCDataChannel is a DataChannelLike as it is.
 */
import { DEFAULT_CHANNEL_MESSAGE_BYTES } from '@switchboard/protocol';
import type { DataChannelLike } from './channel.ts';
import { Listeners } from './events.ts';
import type {
  IceCandidateInit,
  PeerConnectionState,
  PeerDataChannel,
  RtcPeer,
  RtcPeerEvents,
  SessionDescriptionInit,
} from './peer.ts';

export class BrowserPeer implements RtcPeer {
  readonly pc: RTCPeerConnection;
  readonly #events: Listeners<RtcPeerEvents>;

  /** Wrap `pc`, or a new RTCPeerConnection of `config`. */
  constructor(
    pcOrConfig?: RTCPeerConnection | RTCConfiguration,
    onError: (err: unknown) => void = (err) => {
      console.error('RtcPeer listener failed:', err);
    },
  ) {
    this.pc =
      pcOrConfig instanceof RTCPeerConnection ? pcOrConfig : new RTCPeerConnection(pcOrConfig);
    this.#events = new Listeners(onError);
    this.pc.addEventListener('icecandidate', (ev) => {
      if (ev.candidate !== null) this.#events.emit('icecandidate', ev.candidate.toJSON());
    });
    this.pc.addEventListener('datachannel', (ev) => {
      this.#events.emit('datachannel', this.#wrap(ev.channel));
    });
    this.pc.addEventListener('connectionstatechange', () => {
      this.#events.emit('connectionstatechange', this.pc.connectionState);
    });
  }

  get connectionState(): PeerConnectionState {
    return this.pc.connectionState;
  }

  get maxMessageSize(): number {
    return this.pc.sctp?.maxMessageSize ?? DEFAULT_CHANNEL_MESSAGE_BYTES;
  }

  createDataChannel(label: string): PeerDataChannel {
    return this.#wrap(this.pc.createDataChannel(label, { ordered: true }));
  }

  async createOffer(): Promise<SessionDescriptionInit> {
    return await this.pc.createOffer();
  }

  async createAnswer(): Promise<SessionDescriptionInit> {
    return await this.pc.createAnswer();
  }

  async setLocalDescription(description: SessionDescriptionInit): Promise<void> {
    await this.pc.setLocalDescription(description);
  }

  async setRemoteDescription(description: SessionDescriptionInit): Promise<void> {
    await this.pc.setRemoteDescription(description);
  }

  async addIceCandidate(candidate: IceCandidateInit): Promise<void> {
    await this.pc.addIceCandidate(candidate);
  }

  on<K extends keyof RtcPeerEvents>(
    event: K,
    listener: (value: RtcPeerEvents[K]) => void,
  ): () => void {
    return this.#events.on(event, listener);
  }

  async close(): Promise<void> {
    this.pc.close();
    this.#events.clear();
  }

  #wrap(channel: RTCDataChannel): PeerDataChannel {
    channel.binaryType = 'arraybuffer';
    // The point of DataChannelLike: the native channel fits it unchanged.
    const like: DataChannelLike = channel;
    // A getter: the offerer's channel exists before the answer says the remote's size.
    const size = (): number => this.maxMessageSize;
    return {
      channel: like,
      label: channel.label,
      get maxMessageSize() {
        return size();
      },
    };
  }
}
