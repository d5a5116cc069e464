/**
 * One session's media in a room: its transports and what it produces and consumes. All of
 * it lives on one router (its "route"), chosen when the peer arrives; producers of peers
 * on other routers reach it through pipeToRouter.
 *
 * The peer owns what it creates, as mediasoup's transports own their producers: it keeps
 * each transport, producer and consumer until it closes (counting transports and consumers
 * against its worker's load), and tells its room of new and closed producers through its
 * events; the room never writes into a peer.
 */
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import {
  ProtocolError,
  type ProducerSource,
  type RtpCapabilities,
  type SessionGrants,
  type SrtpParameters,
} from '@switchboard/protocol';
import { clientInput } from './errors.ts';
import type { Route } from './route.ts';
import type { WorkerPool } from './workers.ts';

/** A peer's transport: WebRTC (browsers) or plain RTP (trusted tools, when enabled). */
export type MediaTransport =
  | { kind: 'webrtc'; direction: 'send' | 'recv'; transport: types.WebRtcTransport }
  | {
      kind: 'plain';
      direction: 'send' | 'recv';
      transport: types.PlainTransport;
      /** The member's SRTP keys (an SRTP transport): a receiving one is connected with them. */
      srtp: SrtpParameters | undefined;
    };

/** What a producer's appData says of it. */
export type ProducerData = {
  socketId: string;
  userId: string;
  source: ProducerSource;
};

export interface MediaPeerEvents {
  /** It produced (emitted as the producer is kept, before produce() returns). */
  newproducer: [producer: types.Producer<ProducerData>];
  /** One of its producers closed (by its owner, the grants, or with its transport). */
  producerclose: [producer: types.Producer<ProducerData>];
  newdataproducer: [dataProducer: types.DataProducer<ProducerData>];
  dataproducerclose: [dataProducer: types.DataProducer<ProducerData>];
}

export class MediaPeer extends EventEmitter<MediaPeerEvents> {
  readonly socketId: string;
  readonly userId: string;
  readonly route: Route;
  readonly #pool: Pick<WorkerPool, 'track'>;
  /** When the peer was placed (epoch ms). */
  readonly placedAt = Date.now();
  /** What the client can receive; set with its receiving transport. */
  #rtpCapabilities: types.RtpCapabilities | undefined;
  readonly #transports = new Map<string, MediaTransport>();
  /** The transport consumers are created on. */
  #recv: MediaTransport | undefined;
  readonly #producers = new Map<string, types.Producer<ProducerData>>();
  readonly #consumers = new Map<string, types.Consumer>();
  readonly #dataProducers = new Map<string, types.DataProducer<ProducerData>>();
  readonly #dataConsumers = new Map<string, types.DataConsumer>();
  /**
   * Producers the server API muted, and whether their owner had paused them itself (then an
   * unmute leaves them paused).
   */
  readonly #muted = new Map<string, { ownerPaused: boolean }>();
  #closed = false;

  constructor(socketId: string, userId: string, route: Route, pool: Pick<WorkerPool, 'track'>) {
    super();
    this.socketId = socketId;
    this.userId = userId;
    this.route = route;
    this.#pool = pool;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get peer(): { socketId: string; userId: string } {
    return { socketId: this.socketId, userId: this.userId };
  }

  get rtpCapabilities(): types.RtpCapabilities | undefined {
    return this.#rtpCapabilities;
  }

  /** The transport consumers are created on. */
  get recv(): MediaTransport | undefined {
    return this.#recv;
  }

  get transports(): ReadonlyMap<string, MediaTransport> {
    return this.#transports;
  }

  get producers(): ReadonlyMap<string, types.Producer<ProducerData>> {
    return this.#producers;
  }

  get dataProducers(): ReadonlyMap<string, types.DataProducer<ProducerData>> {
    return this.#dataProducers;
  }

  transport(id: string): MediaTransport {
    const t = this.#transports.get(id);
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
    const p = this.#producers.get(id);
    if (p === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', `producer ${id}`);
    return p;
  }

  consumer(id: string): types.Consumer {
    const c = this.#consumers.get(id);
    if (c === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', `consumer ${id}`);
    return c;
  }

  /** It has a consumer of `producerId`. */
  consumes(producerId: string): boolean {
    return [...this.#consumers.values()].some((c) => c.producerId === producerId);
  }

  /** It has a data consumer of `dataProducerId`. */
  consumesData(dataProducerId: string): boolean {
    return [...this.#dataConsumers.values()].some((c) => c.dataProducerId === dataProducerId);
  }

  // ---------------------------------------------------------------------- transports

  /**
   * Create a WebRTC transport on its worker's WebRtcServer: UDP preferred, TCP too, SCTP if
   * the client can (it gave its SCTP capabilities; mediasoup negotiates the streams itself)
   * (see #add).
   */
  async createWebRtcTransport(
    direction: 'send' | 'recv',
    rtpCapabilities: RtpCapabilities | undefined,
    o: { sctp: boolean; initialOutgoingBitrate: number },
  ): Promise<types.WebRtcTransport> {
    const transport = await this.route.router.createWebRtcTransport({
      webRtcServer: this.route.slot.webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      enableSctp: o.sctp,
      initialAvailableOutgoingBitrate: o.initialOutgoingBitrate,
      appData: { socketId: this.socketId, direction },
    });
    this.#add({ kind: 'webrtc', direction, transport }, rtpCapabilities);
    return transport;
  }

  /**
   * Create a plain RTP transport listening on `listen` (see #add); with `srtp` (the member's
   * keys), an SRTP one in that suite. A sending one (comedia) is connected with the keys at
   * once; a receiving one when it is told where to send.
   */
  async createPlainTransport(
    direction: 'send' | 'recv',
    rtpCapabilities: RtpCapabilities | undefined,
    listen: { ip: string; announcedAddress: string | undefined },
    srtp: SrtpParameters | undefined,
  ): Promise<types.PlainTransport> {
    const transport = await this.route.router.createPlainTransport({
      ...(srtp === undefined ? {} : { enableSrtp: true, srtpCryptoSuite: srtp.cryptoSuite }),
      listenInfo: {
        protocol: 'udp',
        ip: listen.ip,
        ...(listen.announcedAddress === undefined
          ? {}
          : { announcedAddress: listen.announcedAddress }),
      },
      rtcpMux: true,
      // A sender is learnt from its first packet; a receiver is told where to send.
      comedia: direction === 'send',
      appData: { socketId: this.socketId, direction },
    });
    if (direction === 'send' && srtp !== undefined) {
      try {
        // The keys are the member's: mediasoup refusing them (a wrong length) is its input.
        await clientInput(() => transport.connect({ srtpParameters: srtp }));
      } catch (err) {
        transport.close();
        throw err;
      }
    }
    this.#add({ kind: 'plain', direction, transport, srtp }, rtpCapabilities);
    return transport;
  }

  /** Keep a new transport until it closes (closing it if the peer left meanwhile). */
  #add(t: MediaTransport, rtpCapabilities: RtpCapabilities | undefined): void {
    const { transport } = t;
    if (this.#closed) {
      transport.close();
      throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
    }
    this.#pool.track(this.route.slot, transport);
    this.#transports.set(transport.id, t);
    (transport.observer as types.TransportObserver).once('close', () => {
      this.#transports.delete(transport.id);
      if (this.#recv === t) this.#recv = undefined;
    });
    if (t.direction === 'recv' && rtpCapabilities !== undefined) {
      // One receiving transport per peer: a new one replaces the old (its consumers close).
      const previous = this.#recv;
      this.#recv = t;
      this.#rtpCapabilities = rtpCapabilities as types.RtpCapabilities;
      previous?.transport.close();
    }
  }

  // ----------------------------------------------------------------------- producers

  /** Produce on `transport` (one of its sending transports); kept until it closes. */
  async produce(
    transport: MediaTransport['transport'],
    options: Omit<types.ProducerOptions, 'appData'> & { source: ProducerSource },
  ): Promise<types.Producer<ProducerData>> {
    const { source, ...rest } = options;
    const producer = await clientInput(() =>
      transport.produce<ProducerData>({
        ...rest,
        appData: { socketId: this.socketId, userId: this.userId, source },
      }),
    );
    this.#keepable(transport, producer);
    this.#producers.set(producer.id, producer);
    producer.observer.once('close', () => {
      this.#producers.delete(producer.id);
      this.#muted.delete(producer.id);
      this.emit('producerclose', producer);
    });
    this.emit('newproducer', producer);
    return producer;
  }

  /** Produce data on `transport` (one of its WebRTC transports); kept until it closes. */
  async produceData(
    transport: types.WebRtcTransport,
    options: Omit<types.DataProducerOptions, 'appData'>,
  ): Promise<types.DataProducer<ProducerData>> {
    const dataProducer = await clientInput(() =>
      transport.produceData<ProducerData>({
        ...options,
        appData: { socketId: this.socketId, userId: this.userId, source: 'other' },
      }),
    );
    this.#keepable(transport, dataProducer);
    this.#dataProducers.set(dataProducer.id, dataProducer);
    dataProducer.observer.once('close', () => {
      this.#dataProducers.delete(dataProducer.id);
      this.emit('dataproducerclose', dataProducer);
    });
    this.emit('newdataproducer', dataProducer);
    return dataProducer;
  }

  /** Close a producer or data producer of this id. */
  closeProducer(id: string): void {
    const producer = this.#producers.get(id);
    const data = this.#dataProducers.get(id);
    if (producer === undefined && data === undefined) {
      throw new ProtocolError('MEDIA_NOT_FOUND', `producer ${id}`);
    }
    producer?.close();
    data?.close();
  }

  /** Its owner pauses a producer. */
  async pauseProducer(id: string): Promise<void> {
    const producer = this.producer(id);
    // Muted by the server: it stays paused; the owner's wish is kept for the unmute.
    const muted = this.#muted.get(producer.id);
    if (muted !== undefined) muted.ownerPaused = true;
    await producer.pause();
  }

  /** Its owner resumes a producer (refused while the server has it muted). */
  async resumeProducer(id: string): Promise<void> {
    const producer = this.producer(id);
    if (this.#muted.has(producer.id)) {
      throw new ProtocolError('PERMISSION_DENIED', 'muted by the server');
    }
    await producer.resume();
  }

  /**
   * The server API mutes or unmutes a producer: whether that changed anything, and whether
   * the producer was resumed (an unmute does not resume what its owner had paused).
   */
  async setMuted(
    id: string,
    muted: boolean,
  ): Promise<{ producer: types.Producer<ProducerData>; changed: boolean; resumed: boolean }> {
    const producer = this.producer(id);
    const entry = this.#muted.get(producer.id);
    if (muted && entry === undefined) {
      this.#muted.set(producer.id, { ownerPaused: producer.paused });
      await producer.pause();
      return { producer, changed: true, resumed: false };
    }
    if (!muted && entry !== undefined) {
      this.#muted.delete(producer.id);
      if (!entry.ownerPaused) await producer.resume();
      return { producer, changed: true, resumed: !entry.ownerPaused };
    }
    return { producer, changed: false, resumed: false };
  }

  // ----------------------------------------------------------------------- consumers

  /** Consume on its receiving transport; kept until it closes. */
  async consume(options: types.ConsumerOptions): Promise<types.Consumer> {
    const transport = this.#recv?.transport;
    if (transport === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no transport yet');
    const consumer = await transport.consume(options);
    this.#keepable(transport, consumer);
    this.#pool.track(this.route.slot, consumer);
    this.#consumers.set(consumer.id, consumer);
    consumer.observer.once('close', () => this.#consumers.delete(consumer.id));
    return consumer;
  }

  /** Consume data on its receiving (WebRTC) transport; kept until it closes. */
  async consumeData(options: types.DataConsumerOptions): Promise<types.DataConsumer> {
    const recv = this.#recv;
    if (recv?.kind !== 'webrtc') throw new ProtocolError('MEDIA_NOT_FOUND', 'no transport yet');
    const dataConsumer = await recv.transport.consumeData(options);
    this.#keepable(recv.transport, dataConsumer);
    this.#dataConsumers.set(dataConsumer.id, dataConsumer);
    dataConsumer.observer.once('close', () => this.#dataConsumers.delete(dataConsumer.id));
    return dataConsumer;
  }

  /**
   * What a transport just made is kept only if the transport is still open: one that closed
   * while the worker was making it has already closed its children, so this one would never
   * hear its close (and stay here, published, forever).
   */
  #keepable(
    transport: { readonly closed: boolean; readonly id: string },
    child: { close(): void },
  ): void {
    if (!transport.closed) return;
    child.close();
    throw new ProtocolError('MEDIA_NOT_FOUND', `transport ${transport.id} closed meanwhile`);
  }

  // ------------------------------------------------------------------------ lifecycle

  /** Its grants changed: close what they no longer allow; how many closed. */
  enforceGrants(grants: SessionGrants): number {
    let closed = 0;
    for (const producer of [...this.#producers.values()]) {
      if (!grants.publish || !grants.sources.includes(producer.appData.source)) {
        producer.close();
        closed++;
      }
    }
    if (!grants.data) {
      for (const data of [...this.#dataProducers.values()]) {
        data.close();
        closed++;
      }
    }
    if (!grants.subscribe) {
      for (const [id, t] of [...this.#transports]) {
        if (t.direction !== 'recv') continue;
        t.transport.close();
        this.#transports.delete(id);
        if (this.#recv === t) this.#recv = undefined;
        closed++;
      }
    }
    return closed;
  }

  /** Close every transport: producers and consumers close with them. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#transports.values()) t.transport.close();
    this.#transports.clear();
    this.#recv = undefined;
  }
}

/** Read `closed` anew (after an await, the checker would keep an earlier narrowing). */
export function isClosed(o: { readonly closed: boolean }): boolean {
  return o.closed;
}
