/**
 * A room on this media node: its members' media actions, and the parts it is made of.
 *
 * - Members (members.ts): each session's peer, placed by its first request, closed when it
 *   leaves. A peer (peer.ts) owns its transports, producers and consumers; the room learns
 *   of new and closed producers through its events.
 * - Placement (placement.ts): a router per worker the room spans, where a peer goes, and
 *   pipeToRouter between the routers, so every participant receives every producer.
 * - Consumer wiring (wiring.ts): consuming is server-initiated: a new producer is consumed
 *   (paused) on every other peer and announced with eventNewConsumer; the client resumes it.
 * - Freezes (freezes.ts): a video producer whose camera silently stops.
 *
 * A worker hosting any of the room's routers dies: the whole room closes and its peers get
 * eventMediaReset (the node forgets the room; the next request re-creates it on a healthy
 * worker). Rooms on other workers notice nothing.
 */
import type { types } from 'mediasoup';
import {
  ProtocolError,
  type MediaNodeAdmin,
  type SessionGrants,
  type TrackChange,
  type MediaEventFrame,
  type RpcReply,
  type RpcRequest,
  type Media,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { clientInput } from './errors.ts';
import { Freezes } from './freezes.ts';
import { Members } from './members.ts';
import type { MediaPeer, ProducerData } from './peer.ts';
import { Placement } from './placement.ts';
import { ConsumerWiring } from './wiring.ts';
import type { WorkerPool } from './workers.ts';
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
  readonly #placement: Placement;
  readonly #wiring: ConsumerWiring;
  readonly #freezes: Freezes;
  readonly #members: Members;
  #closed = false;

  constructor(roomId: string, deps: RoomDeps) {
    this.roomId = roomId;
    this.#deps = deps;
    this.#log = deps.log.child({ roomId });
    this.#placement = new Placement({
      roomId,
      pool: deps.pool,
      maxLoad: deps.limits.maxLoad,
      log: this.#log,
    });
    this.#placement.on('workerclose', (slot) => {
      this.#log.warn({ slot }, "a worker hosting the room's media died");
      this.close('worker');
    });
    this.#placement.on('dominantspeaker', (producer) => {
      this.#dominant(producer);
    });
    this.#wiring = new ConsumerWiring({
      peers: () => this.#members.placed(),
      placement: this.#placement,
      log: this.#log,
      send: (socketId, event) => {
        deps.send(socketId, event);
      },
    });
    this.#freezes = new Freezes(this.#log);
    this.#freezes.on('freeze', (peer, producer) => {
      this.#frozen(peer, producer);
    });
    this.#members = new Members({ placement: this.#placement, pool: deps.pool, log: this.#log });
    this.#members.on('placed', (peer) => {
      this.#watch(peer);
    });
    this.#members.on('empty', () => {
      this.close('empty');
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Peers placed so far (including ones being placed). */
  get size(): number {
    return this.#members.size;
  }

  /** Worker slots this room has routers on. */
  get slots(): number[] {
    return this.#placement.slots;
  }

  // ------------------------------------------------------------------------ actions

  async getRouterRtpCapabilities(
    req: Req<'getRouterRtpCapabilities'>,
    signal: AbortSignal,
  ): Promise<Rep<'getRouterRtpCapabilities'>> {
    const peer = await this.#members.peer(req, signal, true);
    return peer.route.router.rtpCapabilities as Rep<'getRouterRtpCapabilities'>;
  }

  async createWebRtcTransport(
    req: Req<'createWebRtcTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'createWebRtcTransport'>> {
    const { direction, sctpCapabilities, rtpCapabilities } = req.data;
    const transport = await this.#newTransport(req, signal, (peer) =>
      peer.createWebRtcTransport(direction, rtpCapabilities, {
        sctp: sctpCapabilities !== undefined,
        initialOutgoingBitrate: this.#deps.limits.initialOutgoingBitrate,
      }),
    );
    transport.on('dtlsstatechange', (state) => {
      if (state === 'failed' || state === 'closed') {
        this.#log.info({ socketId: req.socketId, transportId: transport.id, state }, 'dtls');
      }
    });
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
    const { direction, rtpCapabilities, srtp } = req.data;
    const transport = await this.#newTransport(req, signal, (peer) =>
      peer.createPlainTransport(direction, rtpCapabilities, listen, srtp),
    );
    const own = transport.srtpParameters;
    return {
      id: transport.id,
      ip: listen.announcedAddress ?? transport.tuple.localAddress,
      port: transport.tuple.localPort,
      ...(own === undefined
        ? {}
        : { srtpParameters: { cryptoSuite: own.cryptoSuite, keyBase64: own.keyBase64 } }),
    };
  }

  async connectPlainTransport(
    req: Req<'connectPlainTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'connectPlainTransport'>> {
    const peer = await this.#members.peer(req, signal, false);
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
    const { ip, port } = req.data;
    await clientInput(() =>
      t.transport.connect({
        ip,
        port,
        ...(t.srtp === undefined ? {} : { srtpParameters: t.srtp }),
      }),
    );
    return {};
  }

  async connectWebRtcTransport(
    req: Req<'connectWebRtcTransport'>,
    signal: AbortSignal,
  ): Promise<Rep<'connectWebRtcTransport'>> {
    const peer = await this.#members.peer(req, signal, false);
    const transport = peer.webRtcTransport(req.data.transportId);
    await clientInput(() => transport.connect({ dtlsParameters: req.data.dtlsParameters }));
    return {};
  }

  async restartIce(req: Req<'restartIce'>, signal: AbortSignal): Promise<Rep<'restartIce'>> {
    const peer = await this.#members.peer(req, signal, false);
    const iceParameters = await peer.webRtcTransport(req.data.transportId).restartIce();
    return { iceParameters };
  }

  async getTransportStats(
    req: Req<'getTransportStats'>,
    signal: AbortSignal,
  ): Promise<Rep<'getTransportStats'>> {
    const peer = await this.#members.peer(req, signal, false);
    const stats = await peer.transport(req.data.transportId).transport.getStats();
    return { stats: stats as unknown as Record<string, unknown>[] };
  }

  /** (What follows a new producer is #produced's, on the peer's newproducer event.) */
  async produce(req: Req<'produce'>, signal: AbortSignal): Promise<Rep<'produce'>> {
    const peer = await this.#members.peer(req, signal, false);
    const { transport, direction } = peer.transport(req.data.transportId);
    if (direction !== 'send') {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/transportId: not a sending transport');
    }
    this.#checkProducerLimit(peer);
    const producer = await peer.produce(transport, {
      kind: req.data.kind,
      rtpParameters: req.data.rtpParameters as types.RtpParameters,
      paused: req.data.paused ?? false,
      source: req.data.source ?? (req.data.kind === 'audio' ? 'microphone' : 'camera'),
    });
    return { id: producer.id };
  }

  async produceData(req: Req<'produceData'>, signal: AbortSignal): Promise<Rep<'produceData'>> {
    const peer = await this.#members.peer(req, signal, false);
    const transport = peer.webRtcTransport(req.data.transportId);
    if (transport.sctpParameters === undefined) {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/transportId: SCTP is not enabled on it');
    }
    this.#checkProducerLimit(peer);
    const dataProducer = await peer.produceData(transport, {
      sctpStreamParameters: req.data.sctpStreamParameters,
      label: req.data.label ?? '',
      protocol: req.data.protocol ?? '',
    });
    return { id: dataProducer.id };
  }

  async closeProducer(
    req: Req<'closeProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'closeProducer'>> {
    const peer = await this.#members.peer(req, signal, false);
    peer.closeProducer(req.data.producerId);
    return {};
  }

  async pauseProducer(
    req: Req<'pauseProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'pauseProducer'>> {
    const peer = await this.#members.peer(req, signal, false);
    await peer.pauseProducer(req.data.producerId);
    return {};
  }

  async resumeProducer(
    req: Req<'resumeProducer'>,
    signal: AbortSignal,
  ): Promise<Rep<'resumeProducer'>> {
    const peer = await this.#members.peer(req, signal, false);
    await peer.resumeProducer(req.data.producerId);
    this.#freezes.resumed(req.data.producerId);
    return {};
  }

  /** The server API mutes or unmutes a producer (MediaNodeAdmin.muteProducer). */
  async muteProducer(
    req: RpcRequest<typeof MediaNodeAdmin.muteProducer>,
  ): Promise<RpcReply<typeof MediaNodeAdmin.muteProducer>> {
    const peer = this.#members.get(req.socketId);
    if (peer === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no media of this member');
    const { producer, changed, resumed } = await peer.setMuted(req.producerId, req.muted);
    if (resumed) this.#freezes.resumed(producer.id);
    if (changed) {
      this.#deps.send(peer.socketId, {
        a: 'eventProducerMuted',
        d: { producerId: producer.id, muted: req.muted },
      });
    }
    return { paused: producer.paused };
  }

  /** A member's grants changed: close what they no longer allow; how many closed. */
  enforceGrants(socketId: string, grants: SessionGrants): number {
    return this.#members.get(socketId)?.enforceGrants(grants) ?? 0;
  }

  async resumeConsumer(
    req: Req<'resumeConsumer'>,
    signal: AbortSignal,
  ): Promise<Rep<'resumeConsumer'>> {
    const peer = await this.#members.peer(req, signal, false);
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
    const peer = await this.#members.peer(req, signal, false);
    await peer.consumer(req.data.consumerId).pause();
    return {};
  }

  async setConsumerPreferredLayers(
    req: Req<'setConsumerPreferredLayers'>,
    signal: AbortSignal,
  ): Promise<Rep<'setConsumerPreferredLayers'>> {
    const peer = await this.#members.peer(req, signal, false);
    const consumer = peer.consumer(req.data.consumerId);
    if (consumer.kind !== 'video') {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/consumerId: not a video consumer');
    }
    await clientInput(() =>
      consumer.setPreferredLayers({
        spatialLayer: req.data.spatialLayer,
        ...(req.data.temporalLayer === undefined ? {} : { temporalLayer: req.data.temporalLayer }),
      }),
    );
    return {};
  }

  // --------------------------------------------------------------------- membership

  /** The session left the room (or its window expired): close its media. */
  closePeer(socketId: string): void {
    this.#members.leave(socketId);
  }

  /**
   * The room's members as the rooms service listed them (asked at `asked`, epoch ms): peers
   * placed before that and not among them are closed.
   */
  reconcile(members: ReadonlySet<string>, asked: number): void {
    this.#members.reconcile(members, asked);
  }

  /** Close every router (transports, producers and consumers close with them). */
  close(reason: RoomCloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wiring.close();
    const socketIds = this.#members.close();
    this.#placement.close();
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
    await this.#freezes.check(this.#members.placed());
  }

  /** `peer`'s producer froze: telemetry, and eventFreeze to the peers consuming it. */
  #frozen(peer: MediaPeer, producer: types.Producer): void {
    this.#deps.onFreeze(peer.peer, producer.id);
    this.#wiring.frozen(peer, producer.id);
  }

  // ----------------------------------------------------------------------- internals

  /** Follow a placed peer's producers: announced, consumed by the others, forgotten. */
  #watch(peer: MediaPeer): void {
    peer.on('newproducer', (producer) => {
      this.#produced(peer, producer);
    });
    peer.on('producerclose', (producer) => {
      this.#deps.onTrack({
        type: 'unpublished',
        roomId: this.roomId,
        socketId: peer.socketId,
        trackId: producer.id,
      });
      this.#freezes.forget(producer.id);
      this.#placement.forget(producer.id);
    });
    peer.on('newdataproducer', (dataProducer) => {
      this.#wiring.producedData(peer, dataProducer);
    });
    peer.on('dataproducerclose', (dataProducer) => {
      this.#placement.forget(dataProducer.id);
    });
  }

  #produced(peer: MediaPeer, producer: types.Producer<ProducerData>): void {
    this.#deps.onTrack({
      type: 'published',
      roomId: this.roomId,
      socketId: peer.socketId,
      trackId: producer.id,
      kind: producer.kind,
      source: producer.appData.source,
    });
    if (producer.kind === 'audio') {
      peer.route.speaker.addProducer({ producerId: producer.id }).catch((err: unknown) => {
        if (!producer.closed) this.#log.warn({ err }, 'adding a producer to the speaker observer');
      });
    } else {
      this.#freezes.watch(peer, producer);
    }
    this.#wiring.produced(peer, producer);
  }

  #dominant(producer: types.Producer): void {
    const data = producer.appData as Partial<ProducerData>;
    if (data.socketId === undefined || data.userId === undefined) return;
    const event: MediaEventFrame = {
      a: 'eventActiveSpeaker',
      d: { peer: { socketId: data.socketId, userId: data.userId }, producerId: producer.id },
    };
    for (const peer of this.#members.placed()) this.#deps.send(peer.socketId, event);
  }

  /**
   * A transport `make` creates on the request's peer (placed if new), if the peer may have
   * one more; a receiving one (which replaces the peer's previous one) is then given the
   * other peers' producers.
   */
  async #newTransport<T>(
    req: Req<'createWebRtcTransport'> | Req<'createPlainTransport'>,
    signal: AbortSignal,
    make: (peer: MediaPeer) => Promise<T>,
  ): Promise<T> {
    const { direction, rtpCapabilities } = req.data;
    if (direction === 'recv' && rtpCapabilities === undefined) {
      throw new ProtocolError('JSON_FIELD_MISSING', '/d/rtpCapabilities (a receiving transport)');
    }
    const peer = await this.#members.peer(req, signal, true);
    if (peer.transports.size >= this.#deps.limits.maxTransportsPerPeer) {
      throw new ProtocolError('MEDIA_LIMIT', 'transports');
    }
    if (direction === 'recv') this.#deps.recvChurn.take(this.roomId, peer.userId);
    const transport = await make(peer);
    if (direction === 'recv') {
      // The reply goes first; the consumers follow as events (the client queues them
      // until its transport exists).
      setImmediate(() => {
        this.#wiring.receiving(peer);
      });
    }
    return transport;
  }

  #checkProducerLimit(peer: MediaPeer): void {
    if (peer.producers.size + peer.dataProducers.size >= this.#deps.limits.maxProducersPerPeer) {
      throw new ProtocolError('MEDIA_LIMIT', 'producers');
    }
  }
}
