/**
 * A room on this media node: its routers (one per worker it spans), its peers, and the
 * forwarding between them.
 *
 * - Placement: a peer goes to the room's least-loaded route whose worker is under
 *   MEDIASOUP_WORKER_MAX_LOAD; when none is, the room spreads to the least-loaded worker it
 *   does not use yet. Producers reach peers on other routes through pipeToRouter, so every
 *   participant receives every producer wherever it lives.
 * - Consuming is server-initiated: a new producer is consumed (paused) on every other peer's
 *   receiving transport and announced with eventNewConsumer; the client resumes it.
 * - A worker hosting any of the room's routers dies: the whole room closes and its peers
 *   get eventMediaReset (the node forgets the room; the next request re-creates it on a
 *   healthy worker). Rooms on other workers notice nothing.
 */
import type { types } from 'mediasoup';
import {
  ProtocolError,
  type MediaNodeAdmin,
  type SessionGrants,
  type TrackChange,
  type MediaEventFrame,
  type RtpCapabilities,
  type RpcReply,
  type RpcRequest,
  type Media,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { mediaError } from './errors.ts';
import { MediaPeer, type MediaTransport, type ProducerData } from './peer.ts';
import { createRoute, routeAlive, type Route } from './route.ts';
import type { WorkerPool, WorkerSlot } from './workers.ts';
import type { PlainTargets } from './plain-targets.ts';
import type { RecvChurn } from './churn.ts';

export interface RoomLimits {
  maxLoad: number;
  maxTransportsPerPeer: number;
  maxProducersPerPeer: number;
  initialOutgoingBitrate: number;
}

export interface RoomDeps {
  pool: WorkerPool;
  /** Where plain transports listen; undefined: plain transports are disabled. */
  listen: { ip: string; announcedAddress: string | undefined } | undefined;
  /** Where receiving plain transports may send RTP (MEDIA_PLAIN_ALLOWED_CIDRS). */
  plainTargets: PlainTargets;
  /** The node's count of receiving transports created, per room and user. */
  recvChurn: RecvChurn;
  limits: RoomLimits;
  log: Logger;
  /** Write a media event to one member's socket. */
  send(socketId: string, event: MediaEventFrame): void;
  /** A producer froze (score 0 or no bytes): for telemetry. */
  onFreeze(peer: { socketId: string; userId: string }, producerId: string): void;
  /** The room closed (empty, or reset after a worker died). */
  onClose(room: MediaRoom): void;
  /** A producer began or ended (for the rooms service's record of tracks). */
  onTrack(change: TrackChange): void;
}

type Req<M extends keyof typeof Media> = RpcRequest<(typeof Media)[M]>;
type Rep<M extends keyof typeof Media> = RpcReply<(typeof Media)[M]>;

/** Why a room closes: its last member left, its worker died, the node stops, it moved. */
export type RoomCloseReason = 'empty' | 'worker' | 'shutdown' | 'moved';

export class MediaRoom {
  readonly roomId: string;
  readonly #deps: RoomDeps;
  readonly #log: Logger;
  /** Routes by worker slot index; a promise while the router is being created. */
  readonly #routes = new Map<number, Promise<Route>>();
  /** Peers being placed or placed, by socketId. */
  readonly #peers = new Map<string, Promise<MediaPeer>>();
  readonly #placed = new Map<string, MediaPeer>();
  /** pipeToRouter done (or in progress) per `<producerId>:<routerId>`. */
  readonly #pipes = new Map<string, Promise<void>>();
  /** Video producers' byte counts at the last freeze check, and those frozen now. */
  readonly #bytes = new Map<string, number>();
  readonly #frozen = new Set<string>();
  #closed = false;

  constructor(roomId: string, deps: RoomDeps) {
    this.roomId = roomId;
    this.#deps = deps;
    this.#log = deps.log.child({ roomId });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Peers placed so far (including ones being placed). */
  get size(): number {
    return this.#peers.size;
  }

  /** Worker slots this room has routers on. */
  get slots(): number[] {
    return [...this.#routes.keys()];
  }

  // ------------------------------------------------------------------------ actions

  async getRouterRtpCapabilities(
    req: Req<'getRouterRtpCapabilities'>,
    signal: AbortSignal,
  ): Promise<Rep<'getRouterRtpCapabilities'>> {
    const peer = await this.#peer(req, signal, true);
    return peer.route.router.rtpCapabilities as Rep<'getRouterRtpCapabilities'>;
  }

  async createWebRtcTransport(
    req: Req<'createWebRtcTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'createWebRtcTransport'>> {
    const { direction, sctpCapabilities, rtpCapabilities } = req.data;
    if (direction === 'recv' && rtpCapabilities === undefined) {
      throw new ProtocolError('JSON_FIELD_MISSING', '/d/rtpCapabilities (a receiving transport)');
    }
    const peer = await this.#peer(req, signal, true);
    this.#checkTransportLimit(peer);
    if (direction === 'recv') this.#deps.recvChurn.take(this.roomId, peer.userId);
    const { router, slot } = peer.route;
    const transport = await router.createWebRtcTransport({
      webRtcServer: slot.webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      ...(sctpCapabilities === undefined
        ? {}
        : { enableSctp: true, numSctpStreams: sctpCapabilities.numStreams }),
      initialAvailableOutgoingBitrate: this.#deps.limits.initialOutgoingBitrate,
      appData: { socketId: peer.socketId, direction },
    });
    transport.on('dtlsstatechange', (state) => {
      if (state === 'failed' || state === 'closed') {
        this.#log.info({ socketId: peer.socketId, transportId: transport.id, state }, 'dtls');
      }
    });
    this.#register(peer, { kind: 'webrtc', direction, transport }, rtpCapabilities);
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
      ...(transport.sctpParameters === undefined
        ? {}
        : { sctpParameters: transport.sctpParameters }),
    };
  }

  async createPlainTransport(
    req: Req<'createPlainTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'createPlainTransport'>> {
    const { listen } = this.#deps;
    if (listen === undefined) {
      throw new ProtocolError('UNKNOWN_ACTION', 'plain transports are disabled on this node');
    }
    const { direction, rtpCapabilities } = req.data;
    if (direction === 'recv' && rtpCapabilities === undefined) {
      throw new ProtocolError('JSON_FIELD_MISSING', '/d/rtpCapabilities (a receiving transport)');
    }
    const peer = await this.#peer(req, signal, true);
    this.#checkTransportLimit(peer);
    if (direction === 'recv') this.#deps.recvChurn.take(this.roomId, peer.userId);
    const transport = await peer.route.router.createPlainTransport({
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
      appData: { socketId: peer.socketId, direction },
    });
    this.#register(peer, { kind: 'plain', direction, transport }, rtpCapabilities);
    return {
      id: transport.id,
      ip: listen.announcedAddress ?? transport.tuple.localAddress,
      port: transport.tuple.localPort,
    };
  }

  async connectPlainTransport(
    req: Req<'connectPlainTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'connectPlainTransport'>> {
    const peer = await this.#peer(req, signal, false);
    const t = peer.transport(req.data.transportId);
    if (t.kind !== 'plain' || t.direction !== 'recv') {
      throw new ProtocolError('MEDIA_NOT_FOUND', `receiving plain transport ${t.transport.id}`);
    }
    if (!this.#deps.plainTargets.allows(req.data.ip)) {
      throw new ProtocolError(
        'PERMISSION_DENIED',
        'RTP may only be sent to MEDIA_PLAIN_ALLOWED_CIDRS',
      );
    }
    await t.transport.connect({ ip: req.data.ip, port: req.data.port });
    return {};
  }

  async connectWebRtcTransport(
    req: Req<'connectWebRtcTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'connectWebRtcTransport'>> {
    const peer = await this.#peer(req, signal, false);
    await peer.webRtcTransport(req.data.transportId).connect({
      dtlsParameters: req.data.dtlsParameters,
    });
    return {};
  }

  async restartIce(req: Req<'restartIce'>, signal: AbortSignal): Promise<Rep<'restartIce'>> {
    const peer = await this.#peer(req, signal, false);
    const iceParameters = await peer.webRtcTransport(req.data.transportId).restartIce();
    return { iceParameters };
  }

  async getTransportStats(
    req: Req<'getTransportStats'>,
    signal: AbortSignal,
  ): Promise<Rep<'getTransportStats'>> {
    const peer = await this.#peer(req, signal, false);
    const stats = await peer.transport(req.data.transportId).transport.getStats();
    return { stats: stats as unknown as Record<string, unknown>[] };
  }

  async produce(req: Req<'produce'>, signal: AbortSignal): Promise<Rep<'produce'>> {
    const peer = await this.#peer(req, signal, false);
    const { transport, direction } = peer.transport(req.data.transportId);
    if (direction !== 'send') {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/transportId: not a sending transport');
    }
    this.#checkProducerLimit(peer);
    const source = req.data.source ?? (req.data.kind === 'audio' ? 'microphone' : 'camera');
    const producer = await transport.produce<ProducerData>({
      kind: req.data.kind,
      rtpParameters: req.data.rtpParameters as types.RtpParameters,
      paused: req.data.paused ?? false,
      appData: { socketId: peer.socketId, userId: peer.userId, source },
    });
    peer.producers.set(producer.id, producer);
    this.#deps.onTrack({
      type: 'published',
      roomId: this.roomId,
      socketId: peer.socketId,
      trackId: producer.id,
      kind: producer.kind,
      source,
    });
    producer.observer.once('close', () => {
      this.#deps.onTrack({
        type: 'unpublished',
        roomId: this.roomId,
        socketId: peer.socketId,
        trackId: producer.id,
      });
      peer.producers.delete(producer.id);
      peer.muted.delete(producer.id);
      this.#bytes.delete(producer.id);
      this.#frozen.delete(producer.id);
      for (const key of this.#pipes.keys()) {
        if (key.startsWith(`${producer.id}:`)) this.#pipes.delete(key);
      }
    });
    if (producer.kind === 'audio') {
      peer.route.speaker.addProducer({ producerId: producer.id }).catch((err: unknown) => {
        if (!producer.closed) this.#log.warn({ err }, 'adding a producer to the speaker observer');
      });
    } else {
      producer.on('score', (scores) => {
        // Every stream at 0 is a freeze; only every stream back above 0 ends it (a simulcast
        // producer's streams report one by one).
        if (scores.length === 0) return;
        if (scores.every((s) => s.score === 0)) this.#setFrozen(peer, producer, true);
        else if (scores.every((s) => s.score > 0)) this.#setFrozen(peer, producer, false);
      });
    }
    for (const other of this.#placedPeers()) {
      if (other !== peer) this.#spawn(this.#consume(other, peer, producer));
    }
    return { id: producer.id };
  }

  async produceData(req: Req<'produceData'>, signal: AbortSignal): Promise<Rep<'produceData'>> {
    const peer = await this.#peer(req, signal, false);
    const transport = peer.webRtcTransport(req.data.transportId);
    if (transport.sctpParameters === undefined) {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/transportId: SCTP is not enabled on it');
    }
    this.#checkProducerLimit(peer);
    const dataProducer = await transport.produceData<ProducerData>({
      sctpStreamParameters: req.data.sctpStreamParameters,
      label: req.data.label ?? '',
      protocol: req.data.protocol ?? '',
      appData: { socketId: peer.socketId, userId: peer.userId, source: 'other' },
    });
    peer.dataProducers.set(dataProducer.id, dataProducer);
    dataProducer.observer.once('close', () => {
      peer.dataProducers.delete(dataProducer.id);
      for (const key of this.#pipes.keys()) {
        if (key.startsWith(`${dataProducer.id}:`)) this.#pipes.delete(key);
      }
    });
    for (const other of this.#placedPeers()) {
      if (other !== peer) this.#spawn(this.#consumeData(other, peer, dataProducer));
    }
    return { id: dataProducer.id };
  }

  async closeProducer(
    req: Req<'closeProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'closeProducer'>> {
    const peer = await this.#peer(req, signal, false);
    const producer = peer.producers.get(req.data.producerId);
    const data = peer.dataProducers.get(req.data.producerId);
    if (producer === undefined && data === undefined) {
      throw new ProtocolError('MEDIA_NOT_FOUND', `producer ${req.data.producerId}`);
    }
    producer?.close();
    data?.close();
    return {};
  }

  async pauseProducer(
    req: Req<'pauseProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'pauseProducer'>> {
    const peer = await this.#peer(req, signal, false);
    const producer = peer.producer(req.data.producerId);
    // Muted by the server: it stays paused; the owner's wish is kept for the unmute.
    const muted = peer.muted.get(producer.id);
    if (muted !== undefined) muted.ownerPaused = true;
    await producer.pause();
    return {};
  }

  async resumeProducer(
    req: Req<'resumeProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'resumeProducer'>> {
    const peer = await this.#peer(req, signal, false);
    const producer = peer.producer(req.data.producerId);
    if (peer.muted.has(producer.id)) {
      throw new ProtocolError('PERMISSION_DENIED', 'muted by the server');
    }
    await producer.resume();
    this.#bytes.delete(producer.id);
    return {};
  }

  /** The server API mutes or unmutes a producer (MediaNodeAdmin.muteProducer). */
  async muteProducer(
    req: RpcRequest<typeof MediaNodeAdmin.muteProducer>,
  ): Promise<RpcReply<typeof MediaNodeAdmin.muteProducer>> {
    const peer = this.#placed.get(req.socketId);
    if (peer === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no media of this member');
    const producer = peer.producer(req.producerId);
    const entry = peer.muted.get(producer.id);
    if (req.muted && entry === undefined) {
      peer.muted.set(producer.id, { ownerPaused: producer.paused });
      await producer.pause();
      this.#deps.send(peer.socketId, {
        a: 'eventProducerMuted',
        d: { producerId: producer.id, muted: true },
      });
    } else if (!req.muted && entry !== undefined) {
      peer.muted.delete(producer.id);
      if (!entry.ownerPaused) {
        await producer.resume();
        this.#bytes.delete(producer.id);
      }
      this.#deps.send(peer.socketId, {
        a: 'eventProducerMuted',
        d: { producerId: producer.id, muted: false },
      });
    }
    return { paused: producer.paused };
  }

  /** A member's grants changed: close what they no longer allow; how many closed. */
  enforceGrants(socketId: string, grants: SessionGrants): number {
    const peer = this.#placed.get(socketId);
    if (peer === undefined) return 0;
    let closed = 0;
    for (const producer of [...peer.producers.values()]) {
      if (!grants.publish || !grants.sources.includes(producer.appData.source)) {
        producer.close();
        closed++;
      }
    }
    if (!grants.data) {
      for (const data of [...peer.dataProducers.values()]) {
        data.close();
        closed++;
      }
    }
    if (!grants.subscribe) {
      for (const [id, t] of [...peer.transports]) {
        if (t.direction !== 'recv') continue;
        t.transport.close();
        peer.transports.delete(id);
        if (peer.recv === t) peer.recv = undefined;
        closed++;
      }
    }
    return closed;
  }

  async resumeConsumer(
    req: Req<'resumeConsumer'>,
    signal: AbortSignal,
  ): Promise<Rep<'resumeConsumer'>> {
    const peer = await this.#peer(req, signal, false);
    const consumer = peer.consumer(req.data.consumerId);
    await consumer.resume();
    // A fresh video consumer starts from a key frame.
    if (consumer.kind === 'video') await consumer.requestKeyFrame();
    // Scores are sent when they change: a member arriving after they settled hears the
    // current one here.
    const { score, producerScore } = consumer.score;
    this.#deps.send(peer.socketId, {
      a: 'eventConsumerScore',
      d: { consumerId: consumer.id, score, producerScore },
    });
    return {};
  }

  async pauseConsumer(
    req: Req<'pauseConsumer'>,
    signal: AbortSignal,
  ): Promise<Rep<'pauseConsumer'>> {
    const peer = await this.#peer(req, signal, false);
    await peer.consumer(req.data.consumerId).pause();
    return {};
  }

  async setConsumerPreferredLayers(
    req: Req<'setConsumerPreferredLayers'>,
    signal: AbortSignal,
  ): Promise<Rep<'setConsumerPreferredLayers'>> {
    const peer = await this.#peer(req, signal, false);
    const consumer = peer.consumer(req.data.consumerId);
    if (consumer.kind !== 'video') {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/consumerId: not a video consumer');
    }
    await consumer.setPreferredLayers({
      spatialLayer: req.data.spatialLayer,
      ...(req.data.temporalLayer === undefined ? {} : { temporalLayer: req.data.temporalLayer }),
    });
    return {};
  }

  // --------------------------------------------------------------------- membership

  /** The session left the room (or its window expired): close its media. */
  closePeer(socketId: string): void {
    if (!this.#peers.delete(socketId)) return;
    const peer = this.#placed.get(socketId);
    this.#placed.delete(socketId);
    if (peer !== undefined) {
      peer.close();
      this.#log.info({ socketId }, 'peer closed');
    }
    if (this.#peers.size === 0) this.close('empty');
  }

  /**
   * The room's members as the rooms service listed them (asked at `asked`, epoch ms): peers
   * placed before that and not among them are closed.
   */
  reconcile(members: ReadonlySet<string>, asked: number): void {
    for (const [socketId, peer] of [...this.#placed]) {
      if (!members.has(socketId) && peer.placedAt < asked) {
        this.#log.info({ socketId }, 'session no longer in the room; closing its media');
        this.closePeer(socketId);
      }
    }
  }

  /** Close every router (transports, producers and consumers close with them). */
  close(reason: RoomCloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    const socketIds = [...this.#peers.keys()];
    this.#peers.clear();
    for (const peer of this.#placed.values()) peer.close();
    this.#placed.clear();
    for (const pending of this.#routes.values()) {
      pending.then(
        (route) => {
          route.router.close();
        },
        () => undefined,
      );
    }
    this.#routes.clear();
    this.#log.info({ reason, peers: socketIds.length }, 'media room closed');
    if (reason === 'worker') {
      for (const socketId of socketIds) {
        this.#deps.send(socketId, { a: 'eventMediaReset', d: { reason: 'worker' } });
      }
    }
    this.#deps.onClose(this);
  }

  // ---------------------------------------------------------------------- freezes

  /** Check video producers' byte counts: one that stopped growing while live is frozen. */
  async checkFreezes(): Promise<void> {
    for (const peer of this.#placedPeers()) {
      for (const producer of peer.producers.values()) {
        if (producer.kind !== 'video' || producer.closed) continue;
        if (producer.paused) {
          this.#bytes.delete(producer.id);
          continue;
        }
        let bytes = 0;
        try {
          for (const s of await producer.getStats()) bytes += s.byteCount;
        } catch (err) {
          if (!isClosed(producer)) this.#log.debug({ err }, 'producer stats');
          continue;
        }
        const before = this.#bytes.get(producer.id);
        this.#bytes.set(producer.id, bytes);
        // Only a producer that has sent something can stop sending.
        if (before !== undefined && before > 0) this.#setFrozen(peer, producer, bytes === before);
      }
    }
  }

  #setFrozen(peer: MediaPeer, producer: types.Producer, frozen: boolean): void {
    if (frozen === this.#frozen.has(producer.id)) return;
    if (!frozen) {
      this.#frozen.delete(producer.id);
      return;
    }
    this.#frozen.add(producer.id);
    this.#log.info({ socketId: peer.socketId, producerId: producer.id }, 'producer froze');
    this.#deps.onFreeze(peer.peer, producer.id);
    for (const other of this.#placedPeers()) {
      if (other === peer) continue;
      const consumes = [...other.consumers.values()].some((c) => c.producerId === producer.id);
      if (consumes) {
        this.#deps.send(other.socketId, {
          a: 'eventFreeze',
          d: { from: peer.peer, producerId: producer.id },
        });
      }
    }
  }

  // ----------------------------------------------------------------------- internals

  /** Peers whose placement finished. */
  #placedPeers(): MediaPeer[] {
    return [...this.#placed.values()];
  }

  async #peer(
    req: { socketId: string; userId: string },
    signal: AbortSignal,
    create: boolean,
  ): Promise<MediaPeer> {
    if (this.#closed) throw new ProtocolError('MEDIA_RESET', 'the room is being re-created');
    let pending = this.#peers.get(req.socketId);
    if (pending === undefined) {
      if (!create) throw new ProtocolError('MEDIA_NOT_FOUND', 'no transport yet');
      const placing: Promise<MediaPeer> = this.#pickRoute(signal).then((route) => {
        const peer = new MediaPeer(req.socketId, req.userId, route);
        if (this.#closed || this.#peers.get(req.socketId) !== placing) {
          // The session left (or the room closed) while it was being placed.
          throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
        }
        this.#placed.set(req.socketId, peer);
        this.#log.info({ socketId: req.socketId, slot: route.slot.index }, 'peer placed');
        return peer;
      });
      pending = placing;
      this.#peers.set(req.socketId, placing);
      placing.catch(() => {
        if (this.#peers.get(req.socketId) !== placing) return;
        this.#peers.delete(req.socketId);
        if (this.#peers.size === 0) this.close('empty');
      });
    }
    const peer = await pending;
    if (peer.userId !== req.userId) throw new ProtocolError('MEDIA_NOT_FOUND', 'another user');
    if (peer.closed) throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
    return peer;
  }

  async #pickRoute(signal: AbortSignal): Promise<Route> {
    const routes = (await Promise.allSettled(this.#routes.values()))
      .filter((r): r is PromiseFulfilledResult<Route> => r.status === 'fulfilled')
      .map((r) => r.value)
      .filter(routeAlive);
    const open = routes.filter((r) => r.slot.load < this.#deps.limits.maxLoad);
    const best = open.reduce<Route | undefined>(
      (b, r) => (b === undefined || r.slot.load < b.slot.load ? r : b),
      undefined,
    );
    if (best !== undefined) return best;
    // The room is new, or outgrew its workers: take the least-loaded worker it does not use.
    const slot = await this.#deps.pool.leastLoaded(
      signal,
      new Set(routes.map((r) => r.slot.index)),
    );
    return await this.#route(slot);
  }

  async #route(slot: WorkerSlot): Promise<Route> {
    const existing = this.#routes.get(slot.index);
    if (existing !== undefined) {
      const route = await existing;
      if (route.slot === slot && routeAlive(route)) return route;
    }
    const pending = createRoute(slot, this.roomId);
    this.#routes.set(slot.index, pending);
    try {
      const route = await pending;
      if (this.#closed) {
        route.router.close();
        throw new ProtocolError('MEDIA_RESET', 'the room is being re-created');
      }
      route.router.on('workerclose', () => {
        this.#log.warn({ slot: slot.index }, "a worker hosting the room's media died");
        this.close('worker');
      });
      route.speaker.on('dominantspeaker', ({ producer }) => {
        this.#dominant(producer);
      });
      if (this.#routes.size > 1) {
        this.#log.info({ slots: this.slots }, 'room spans several workers (pipeToRouter)');
      }
      return route;
    } catch (err) {
      if (this.#routes.get(slot.index) === pending) this.#routes.delete(slot.index);
      throw err;
    }
  }

  #dominant(producer: types.Producer): void {
    const data = producer.appData as Partial<ProducerData>;
    if (data.socketId === undefined || data.userId === undefined) return;
    const event: MediaEventFrame = {
      a: 'eventActiveSpeaker',
      d: { peer: { socketId: data.socketId, userId: data.userId }, producerId: producer.id },
    };
    for (const peer of this.#placedPeers()) this.#deps.send(peer.socketId, event);
  }

  #checkTransportLimit(peer: MediaPeer): void {
    if (peer.transports.size >= this.#deps.limits.maxTransportsPerPeer) {
      throw new ProtocolError('MEDIA_LIMIT', 'transports');
    }
  }

  /** Keep a new transport on its peer (closing it if the peer left meanwhile). */
  #register(
    peer: MediaPeer,
    t: MediaTransport,
    rtpCapabilities: RtpCapabilities | undefined,
  ): void {
    const { transport } = t;
    if (peer.closed || this.#closed) {
      transport.close();
      throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
    }
    this.#deps.pool.track(peer.route.slot, transport);
    peer.transports.set(transport.id, t);
    (transport.observer as types.TransportObserver).once('close', () => {
      peer.transports.delete(transport.id);
      if (peer.recv === t) peer.recv = undefined;
    });
    if (t.direction === 'recv' && rtpCapabilities !== undefined) {
      // One receiving transport per peer: a new one replaces the old (its consumers close).
      const previous = peer.recv;
      peer.recv = t;
      peer.setCapabilities(rtpCapabilities);
      previous?.transport.close();
      // The reply goes first; the consumers follow as events (the client queues them
      // until its transport exists).
      setImmediate(() => {
        this.#consumeAllFor(peer);
      });
    }
  }

  #checkProducerLimit(peer: MediaPeer): void {
    if (peer.producers.size + peer.dataProducers.size >= this.#deps.limits.maxProducersPerPeer) {
      throw new ProtocolError('MEDIA_LIMIT', 'producers');
    }
  }

  /** Consume every producer of the other peers on `peer`'s new receiving transport. */
  #consumeAllFor(peer: MediaPeer): void {
    for (const other of this.#placedPeers()) {
      if (other === peer) continue;
      for (const producer of other.producers.values()) {
        this.#spawn(this.#consume(peer, other, producer));
      }
      for (const dataProducer of other.dataProducers.values()) {
        this.#spawn(this.#consumeData(peer, other, dataProducer));
      }
    }
  }

  /** Make `producerId` (on `from`) available on `to`'s router. */
  async #pipe(kind: 'producer' | 'data', id: string, from: Route, to: Route): Promise<void> {
    if (from.router === to.router) return;
    const key = `${id}:${to.router.id}`;
    let pending = this.#pipes.get(key);
    if (pending === undefined) {
      pending = from.router
        .pipeToRouter(
          kind === 'producer'
            ? { producerId: id, router: to.router }
            : { dataProducerId: id, router: to.router },
        )
        .then(() => undefined);
      this.#pipes.set(key, pending);
      pending.catch(() => {
        if (this.#pipes.get(key) === pending) this.#pipes.delete(key);
      });
    }
    await pending;
  }

  async #consume(
    peer: MediaPeer,
    owner: MediaPeer,
    producer: types.Producer<ProducerData>,
  ): Promise<void> {
    const transport = peer.recv?.transport;
    const caps = peer.rtpCapabilities;
    if (transport === undefined || caps === undefined || producer.closed || peer.closed) return;
    // A new producer and a new receiving transport can both ask for the same consumer.
    if (peer.consuming.has(producer.id)) return;
    if ([...peer.consumers.values()].some((c) => c.producerId === producer.id)) return;
    peer.consuming.add(producer.id);
    try {
      await this.#createConsumer(peer, owner, producer, transport, caps);
    } finally {
      peer.consuming.delete(producer.id);
    }
  }

  async #createConsumer(
    peer: MediaPeer,
    owner: MediaPeer,
    producer: types.Producer<ProducerData>,
    transport: MediaTransport['transport'],
    caps: types.RtpCapabilities,
  ): Promise<void> {
    await this.#pipe('producer', producer.id, owner.route, peer.route);
    if (!peer.route.router.canConsume({ producerId: producer.id, rtpCapabilities: caps })) {
      this.#log.info(
        { socketId: peer.socketId, producerId: producer.id },
        'the client cannot receive this producer (no common codec)',
      );
      return;
    }
    if (isClosed(producer) || isClosed(peer) || peer.recv?.transport !== transport) return;
    const consumer = await transport.consume({
      producerId: producer.id,
      rtpCapabilities: caps,
      paused: true,
      enableRtx: true,
      appData: { from: owner.socketId },
    });
    this.#deps.pool.track(peer.route.slot, consumer);
    peer.consumers.set(consumer.id, consumer);
    const send = (event: MediaEventFrame) => {
      if (!peer.closed && !this.#closed) this.#deps.send(peer.socketId, event);
    };
    consumer.observer.once('close', () => peer.consumers.delete(consumer.id));
    consumer.on('producerclose', () => {
      send({ a: 'eventConsumerClosed', d: { consumerId: consumer.id } });
    });
    consumer.on('producerpause', () => {
      send({ a: 'eventProducerPaused', d: { consumerId: consumer.id, producerId: producer.id } });
    });
    consumer.on('producerresume', () => {
      send({ a: 'eventProducerResumed', d: { consumerId: consumer.id, producerId: producer.id } });
    });
    consumer.on('score', (score) => {
      send({
        a: 'eventConsumerScore',
        d: { consumerId: consumer.id, score: score.score, producerScore: score.producerScore },
      });
    });
    consumer.on('layerschange', (layers) => {
      send({
        a: 'eventConsumerLayersChanged',
        d: {
          consumerId: consumer.id,
          layers:
            layers === undefined
              ? null
              : {
                  spatialLayer: layers.spatialLayer,
                  ...(layers.temporalLayer === undefined
                    ? {}
                    : { temporalLayer: layers.temporalLayer }),
                },
        },
      });
    });
    send({
      a: 'eventNewConsumer',
      d: {
        peer: owner.peer,
        producerId: producer.id,
        id: consumer.id,
        kind: consumer.kind,
        rtpParameters: consumer.rtpParameters as unknown as Extract<
          MediaEventFrame,
          { a: 'eventNewConsumer' }
        >['d']['rtpParameters'],
        type: consumer.type,
        producerPaused: consumer.producerPaused,
        source: producer.appData.source,
      },
    });
  }

  async #consumeData(
    peer: MediaPeer,
    owner: MediaPeer,
    dataProducer: types.DataProducer<ProducerData>,
  ): Promise<void> {
    const recv = peer.recv;
    if (recv?.kind !== 'webrtc' || dataProducer.closed || peer.closed) return;
    const transport = recv.transport;
    if (transport.sctpParameters === undefined) return;
    if (peer.consuming.has(dataProducer.id)) return;
    if ([...peer.dataConsumers.values()].some((c) => c.dataProducerId === dataProducer.id)) return;
    peer.consuming.add(dataProducer.id);
    try {
      await this.#createDataConsumer(peer, owner, dataProducer, recv, transport);
    } finally {
      peer.consuming.delete(dataProducer.id);
    }
  }

  async #createDataConsumer(
    peer: MediaPeer,
    owner: MediaPeer,
    dataProducer: types.DataProducer<ProducerData>,
    recv: MediaTransport,
    transport: types.WebRtcTransport,
  ): Promise<void> {
    await this.#pipe('data', dataProducer.id, owner.route, peer.route);
    if (isClosed(dataProducer) || isClosed(peer) || peer.recv !== recv) return;
    const dataConsumer = await transport.consumeData({ dataProducerId: dataProducer.id });
    peer.dataConsumers.set(dataConsumer.id, dataConsumer);
    dataConsumer.observer.once('close', () => peer.dataConsumers.delete(dataConsumer.id));
    dataConsumer.on('dataproducerclose', () => {
      if (!peer.closed && !this.#closed) {
        this.#deps.send(peer.socketId, {
          a: 'eventDataConsumerClosed',
          d: { dataConsumerId: dataConsumer.id },
        });
      }
    });
    const sctp = dataConsumer.sctpStreamParameters;
    if (sctp === undefined) return;
    this.#deps.send(peer.socketId, {
      a: 'eventNewDataConsumer',
      d: {
        peer: owner.peer,
        dataProducerId: dataProducer.id,
        id: dataConsumer.id,
        sctpStreamParameters: {
          streamId: sctp.streamId,
          ...(sctp.ordered === undefined ? {} : { ordered: sctp.ordered }),
          ...(sctp.maxPacketLifeTime === undefined
            ? {}
            : { maxPacketLifeTime: sctp.maxPacketLifeTime }),
          ...(sctp.maxRetransmits === undefined ? {} : { maxRetransmits: sctp.maxRetransmits }),
        },
        label: dataConsumer.label,
        protocol: dataConsumer.protocol,
      },
    });
  }

  /** Run background work (consumer creation); a failure is logged, never dropped. */
  #spawn(work: Promise<void>): void {
    work.catch((err: unknown) => {
      if (this.#closed) return;
      const e = mediaError(err);
      this.#log.warn({ err, code: e.errorName }, 'creating a consumer failed');
    });
  }
}

/** Read `closed` anew (after an await, the checker would keep an earlier narrowing). */
function isClosed(o: { readonly closed: boolean }): boolean {
  return o.closed;
}
