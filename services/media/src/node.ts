/**
 * This process as a media node of the platform: it answers the media actions addressed to
 * it (`<p>.media.node.<nodeId>.rpc.<action>`), hosts the rooms the rooms service assigned
 * to it, announces its load on `<p>.media.heartbeat`, and writes media events to client
 * sockets through the gateways' per-socket subjects.
 *
 * A peer's media ends when its session does: the node listens to each hosted room's
 * broadcasts for eventLeave, and every MEDIA_RECONCILE_MS checks its rooms' members with the
 * rooms service (a leave it missed while cut off from NATS is caught there).
 */
import type { Bus, BusSubscription } from '@switchboard/bus';
import {
  MEDIA_ACTIONS,
  Media,
  MediaNodeAdmin,
  ProtocolError,
  Rooms,
  mediaSubjects,
  roomBroadcast,
  signalingSubjects,
  type FreezeTelemetry,
  type MediaAction,
  type MediaEventFrame,
  type MediaNodeHeartbeat,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
  type SocketRelay,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { mediaError, refusedByMediasoup } from './errors.ts';
import type { MediaMetrics } from './metrics.ts';
import { MediaRoom, type RoomLimits } from './room.ts';
import type { WorkerPool } from './workers.ts';
import type { PlainTargets } from './plain-targets.ts';
import { RecvChurn } from './churn.ts';
import { TrackReporter } from './track-reporter.ts';

export interface MediaNodeOptions {
  bus: Bus;
  pool: WorkerPool;
  nodeId: string;
  limits: RoomLimits;
  /** Where plain transports listen; undefined: they are disabled. */
  plainListen: { ip: string; announcedAddress: string | undefined } | undefined;
  /** Where receiving plain transports may send RTP. */
  plainTargets: PlainTargets;
  /** Receiving transports one user may create in one room per minute. */
  recvTransportsPerMin: number;
  heartbeatMs: number;
  reconcileMs: number;
  freezeCheckMs: number;
  log: Logger;
  metrics: MediaMetrics;
}

interface Hosted {
  room: MediaRoom;
  sub: BusSubscription;
}

type Run<A extends MediaAction> = (
  room: MediaRoom,
  req: RpcRequest<(typeof Media)[A]>,
  signal: AbortSignal,
) => Promise<RpcReply<(typeof Media)[A]>>;

/** Every media action, and the room method answering it (the table must be complete). */
const HANDLERS: { [A in MediaAction]: Run<A> } = {
  getRouterRtpCapabilities: (r, q, s) => r.getRouterRtpCapabilities(q, s),
  createWebRtcTransport: (r, q, s) => r.createWebRtcTransport(q, s),
  createPlainTransport: (r, q, s) => r.createPlainTransport(q, s),
  connectPlainTransport: (r, q, s) => r.connectPlainTransport(q, s),
  connectWebRtcTransport: (r, q, s) => r.connectWebRtcTransport(q, s),
  restartIce: (r, q, s) => r.restartIce(q, s),
  produce: (r, q, s) => r.produce(q, s),
  closeProducer: (r, q, s) => r.closeProducer(q, s),
  pauseProducer: (r, q, s) => r.pauseProducer(q, s),
  resumeProducer: (r, q, s) => r.resumeProducer(q, s),
  resumeConsumer: (r, q, s) => r.resumeConsumer(q, s),
  pauseConsumer: (r, q, s) => r.pauseConsumer(q, s),
  setConsumerPreferredLayers: (r, q, s) => r.setConsumerPreferredLayers(q, s),
  produceData: (r, q, s) => r.produceData(q, s),
  getTransportStats: (r, q, s) => r.getTransportStats(q, s),
};

/** The actions that may be a member's first on this node (they place it). */
const CREATING: ReadonlySet<MediaAction> = new Set([
  'getRouterRtpCapabilities',
  'createWebRtcTransport',
  'createPlainTransport',
]);

export class MediaNode {
  readonly #o: MediaNodeOptions;
  readonly #recvChurn: RecvChurn;
  readonly #tracks: TrackReporter;
  readonly #log: Logger;
  readonly #rooms = new Map<string, Hosted>();
  readonly #startedAt = Date.now();
  readonly #timers: NodeJS.Timeout[] = [];
  #accepting = true;
  #reconciling = false;
  #checkingFreezes = false;

  constructor(opts: MediaNodeOptions) {
    this.#o = opts;
    this.#recvChurn = new RecvChurn(opts.recvTransportsPerMin);
    this.#tracks = new TrackReporter(opts.bus, opts.nodeId, opts.log);
    this.#log = opts.log.child({ component: 'media-node' });
  }

  get rooms(): number {
    return this.#rooms.size;
  }

  get accepting(): boolean {
    return this.#accepting;
  }

  start(): void {
    for (const action of MEDIA_ACTIONS) this.#serve(action, HANDLERS[action]);
    this.#serveAdmin();
    this.#tracks.start();

    this.#heartbeat();
    this.#timers.push(
      setInterval(() => {
        this.#heartbeat();
      }, this.#o.heartbeatMs),
      setInterval(() => {
        void this.#reconcile();
      }, this.#o.reconcileMs),
      setInterval(() => {
        void this.#checkFreezes();
      }, this.#o.freezeCheckMs),
    );
    // After a NATS outage: say at once that this node is alive.
    this.#o.bus.onReconnect(() => {
      this.#heartbeat();
    });
  }

  /**
   * Leave the platform (SIGTERM, after in-flight requests finished): no new rooms, the
   * rooms service moves this node's rooms elsewhere and tells their clients to start again
   * (eventMediaReset), then every room closes.
   */
  async stop(signal: AbortSignal): Promise<void> {
    this.#accepting = false;
    for (const t of this.#timers) clearInterval(t);
    this.#heartbeat();
    try {
      const { rooms } = await this.#o.bus.request(
        Rooms.mediaNodeLeft,
        { nodeId: this.#o.nodeId, startedAt: this.#startedAt },
        { signal },
      );
      this.#log.info({ rooms }, 'rooms moved off this node');
    } catch (err) {
      // The rooms service will find this node silent and move its rooms anyway.
      this.#log.warn({ err }, 'telling the rooms service this node leaves failed');
    }
    for (const { room } of [...this.#rooms.values()]) room.close('shutdown');
    // The tracks that just ended, told before the process goes.
    await this.#tracks.stop(signal);
  }

  /** The rooms service's requests for the server API (MediaNodeAdmin), on this node's subjects. */
  #serveAdmin(): void {
    const { bus, nodeId } = this.#o;
    bus.serve(
      MediaNodeAdmin.muteProducer,
      async (req) => {
        const room = this.#room(req.roomId, false);
        try {
          return await room.muteProducer(req);
        } catch (err) {
          throw this.#failed(err, MediaNodeAdmin.muteProducer.method, req.roomId);
        }
      },
      { address: nodeId },
    );
    bus.serve(
      MediaNodeAdmin.enforceGrants,
      (req) => {
        const hosted = this.#rooms.get(req.roomId);
        const closed =
          hosted === undefined || hosted.room.closed
            ? 0
            : hosted.room.enforceGrants(req.socketId, req.grants);
        if (closed > 0) this.#log.info({ ...req, closed }, 'closed what new grants disallow');
        return Promise.resolve({ closed });
      },
      { address: nodeId },
    );
  }

  #serve<A extends MediaAction>(action: A, run: Run<A>): void {
    // Every media method's request carries the caller (roomId, socketId, userId) and `data`.
    const method: RpcMethod = Media[action];
    this.#o.bus.serve(
      method,
      async (raw, ctx) => {
        const req = raw as RpcRequest<(typeof Media)[A]> & { roomId: string };
        const room = this.#room(req.roomId, CREATING.has(action));
        try {
          return await run(room, req, ctx.signal);
        } catch (err) {
          throw this.#failed(err, action, req.roomId);
        }
      },
      { address: this.#o.nodeId },
    );
  }

  /**
   * The answer to a request that failed: a fault of this service (SYSTEM) logged with its
   * stack, a refusal of mediasoup's with its reason.
   */
  #failed(err: unknown, action: string, roomId: string): ProtocolError {
    const e = mediaError(err);
    if (e.errorName === 'SYSTEM') {
      this.#log.error({ err, action, roomId }, 'a media request failed (SYSTEM)');
    } else if (refusedByMediasoup(e)) {
      this.#log.info({ err, action, roomId }, 'mediasoup refused a request');
    }
    return e;
  }

  /** The hosted room; with `create`, hosting it if it is not (yet, or any more). */
  #room(roomId: string, create: boolean): MediaRoom {
    const hosted = this.#rooms.get(roomId);
    if (hosted !== undefined && !hosted.room.closed) return hosted.room;
    if (!create) throw new ProtocolError('MEDIA_NOT_FOUND', 'no media in this room here');
    if (!this.#accepting) throw new ProtocolError('SHUTTING_DOWN', 'this media node is leaving');
    const room = new MediaRoom(roomId, {
      pool: this.#o.pool,
      limits: this.#o.limits,
      listen: this.#o.plainListen,
      plainTargets: this.#o.plainTargets,
      recvChurn: this.#recvChurn,
      log: this.#o.log,
      send: (socketId, event) => {
        this.#send(socketId, roomId, event);
      },
      onFreeze: (peer, producerId) => {
        const t: FreezeTelemetry = { roomId, ...peer, at: Date.now() };
        this.#o.metrics.freezes.inc();
        this.#log.debug({ producerId, ...peer }, 'freeze');
        this.#publish(signalingSubjects.telemetryFreeze(this.#o.bus.prefix), t);
      },
      onTrack: (change) => {
        this.#tracks.report(change);
      },
      onClose: (closed) => {
        const h = this.#rooms.get(roomId);
        if (h?.room !== closed) return;
        this.#rooms.delete(roomId);
        h.sub.unsubscribe();
      },
    });
    // Leaves (and window expiries) reach every member of the room as eventLeave.
    const sub = this.#o.bus.subscribe(
      signalingSubjects.room(this.#o.bus.prefix, roomId),
      roomBroadcast,
      (msg) => {
        if (msg.roomId === roomId && msg.event.a === 'eventLeave') {
          room.closePeer(msg.event.d.socketId);
        }
      },
    );
    this.#rooms.set(roomId, { room, sub });
    return room;
  }

  #send(socketId: string, roomId: string, event: MediaEventFrame): void {
    const relay: SocketRelay = { event };
    this.#publish(signalingSubjects.socket(this.#o.bus.prefix, socketId, roomId), relay);
    this.#o.metrics.events.inc({ event: event.a });
  }

  #publish(subject: string, payload: unknown): void {
    try {
      this.#o.bus.publish(subject, payload);
    } catch (err) {
      // Not connected: the event is lost, as it would be for a client that is cut off.
      this.#log.debug({ err, subject }, 'publish failed');
    }
  }

  #heartbeat(): void {
    const { pool } = this.#o;
    const hb: MediaNodeHeartbeat = {
      nodeId: this.#o.nodeId,
      startedAt: this.#startedAt,
      load: pool.load,
      capacity: Math.max(1, pool.live().length * this.#o.limits.maxLoad),
      workers: pool.live().length,
      rooms: this.#rooms.size,
      accepting: this.#accepting,
    };
    this.#publish(mediaSubjects.heartbeat(this.#o.bus.prefix), hb);
  }

  async #reconcile(): Promise<void> {
    if (this.#reconciling) return;
    this.#reconciling = true;
    try {
      for (const [roomId, { room }] of [...this.#rooms]) {
        const asked = Date.now();
        try {
          const info = await this.#o.bus.request(Rooms.roomInfo, { roomId });
          if (info.mediaNodeId !== this.#o.nodeId && info.roomSize > 0) {
            // The room moved (this node was taken for dead, e.g. while cut off from NATS):
            // its members were told to start again elsewhere.
            this.#log.warn({ roomId, now: info.mediaNodeId }, 'room moved to another node');
            room.close('moved');
            continue;
          }
          // Every member: a big room's come in pages.
          const members = new Set(info.sessions.map((s) => s.socketId));
          for (let after = info.next; after !== undefined;) {
            const page = await this.#o.bus.request(Rooms.roomInfo, { roomId, after });
            for (const s of page.sessions) members.add(s.socketId);
            after = page.next;
          }
          room.reconcile(members, asked);
        } catch (err) {
          this.#log.warn({ err, roomId }, 'checking room members failed');
        }
      }
    } finally {
      this.#reconciling = false;
    }
  }

  async #checkFreezes(): Promise<void> {
    if (this.#checkingFreezes) return;
    this.#checkingFreezes = true;
    try {
      for (const { room } of [...this.#rooms.values()]) {
        try {
          await room.checkFreezes();
        } catch (err) {
          this.#log.warn({ err, roomId: room.roomId }, 'freeze check failed');
        }
      }
    } finally {
      this.#checkingFreezes = false;
    }
  }
}
