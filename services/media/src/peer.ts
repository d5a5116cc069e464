/**
 * One session's media in a room: its transports and what it produces and consumes. All of
 * it lives on one router (its "route"), chosen when the peer arrives; producers of peers
 * on other routers reach it through pipeToRouter.
 */
import type { types } from 'mediasoup';
import { ProtocolError, type ProducerSource, type RtpCapabilities } from '@switchboard/protocol';
import type { Route } from './route.ts';

/** A peer's transport: WebRTC (browsers) or plain RTP (trusted tools, when enabled). */
export type MediaTransport =
  | { kind: 'webrtc'; direction: 'send' | 'recv'; transport: types.WebRtcTransport }
  | { kind: 'plain'; direction: 'send' | 'recv'; transport: types.PlainTransport };

/** What a producer's appData says of it. */
export type ProducerData = {
  socketId: string;
  userId: string;
  source: ProducerSource;
};

export class MediaPeer {
  readonly socketId: string;
  readonly userId: string;
  readonly route: Route;
  /** When the peer was placed (epoch ms). */
  readonly placedAt = Date.now();
  /** What the client can receive; set with its receiving transport. */
  rtpCapabilities: types.RtpCapabilities | undefined;
  readonly transports = new Map<string, MediaTransport>();
  /** The transport consumers are created on. */
  recv: MediaTransport | undefined;
  readonly producers = new Map<string, types.Producer<ProducerData>>();
  readonly consumers = new Map<string, types.Consumer>();
  readonly dataProducers = new Map<string, types.DataProducer<ProducerData>>();
  readonly dataConsumers = new Map<string, types.DataConsumer>();
  /**
   * Producers the server API muted, and whether their owner had paused them itself (then an
   * unmute leaves them paused).
   */
  readonly muted = new Map<string, { ownerPaused: boolean }>();
  /** (Data) producer ids a consumer is being created for on this peer. */
  readonly consuming = new Set<string>();
  #closed = false;

  constructor(socketId: string, userId: string, route: Route) {
    this.socketId = socketId;
    this.userId = userId;
    this.route = route;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get peer(): { socketId: string; userId: string } {
    return { socketId: this.socketId, userId: this.userId };
  }

  transport(id: string): MediaTransport {
    const t = this.transports.get(id);
    if (t === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', `transport ${id}`);
    return t;
  }

  webRtcTransport(id: string): types.WebRtcTransport {
    const t = this.transport(id);
    if (t.kind !== 'webrtc') throw new ProtocolError('MEDIA_NOT_FOUND', `WebRTC transport ${id}`);
    return t.transport;
  }

  plainTransport(id: string): types.PlainTransport {
    const t = this.transport(id);
    if (t.kind !== 'plain') throw new ProtocolError('MEDIA_NOT_FOUND', `plain transport ${id}`);
    return t.transport;
  }

  producer(id: string): types.Producer<ProducerData> {
    const p = this.producers.get(id);
    if (p === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', `producer ${id}`);
    return p;
  }

  consumer(id: string): types.Consumer {
    const c = this.consumers.get(id);
    if (c === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', `consumer ${id}`);
    return c;
  }

  setCapabilities(caps: RtpCapabilities): void {
    this.rtpCapabilities = caps as types.RtpCapabilities;
  }

  /** Close every transport: producers and consumers close with them. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.transports.values()) t.transport.close();
    this.transports.clear();
    this.recv = undefined;
  }
}
