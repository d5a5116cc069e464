/**
 * Room membership in PostgreSQL: who is in which room, attached to which gateway through
 * which connection. Every change that alters a room's size runs in a transaction holding
 * the room's row lock, room before session (the lock order is documented with the join, in
 * join.ts); after a change commits, the room hears about it (announcements.ts).
 *
 * Membership is what the rest of the service uses (the RPCs, the sweeper, the server API,
 * the tracks). It owns its parts privately, one concept each:
 * - Joins (join.ts): admitting a session, the hot path, and the lock order;
 * - Leaves (leave.ts): sessions that end (left, removed, expired) and empty rooms closing;
 * - Reconnects (reconnect.ts): the reconnect window, entered and resumed, and the gateways'
 *   heartbeats and resyncs that move sessions in and out of it;
 * - Announcements (announcements.ts): what the rooms and gateways hear after a commit.
 * What they share is Membership's: the transaction bounded by a request's deadline, and the
 * outbox relay's kick after anything that may have written room events. Membership itself
 * makes the changes to an attached session that leave its room's size alone (a token
 * refresh, an orientation, CPU figures): single statements, no room lock. What is read of a
 * room is Listing's (listing.ts).
 */
import type { Logger } from '@switchboard/service';
import {
  ProtocolError,
  type RoomsJoinReply,
  type RoomsJoinRequest,
  type Rooms,
  type RpcReply,
  type RpcRequest,
  type SessionInfo,
} from '@switchboard/protocol';
import { NOW, type Database, type Db, type Tx } from '../db/client.ts';
import type { Deadline } from '../db/sql.ts';
import { Announcements } from './announcements.ts';
import { effectiveGrants } from './grants.ts';
import { Joins } from './join.ts';
import type { UserMediaLadder } from './ladder.ts';
import { Leaves } from './leave.ts';
import type { MembershipMetrics } from './metrics.ts';
import type { Notifier } from './notifier.ts';
import { Reconnects } from './reconnect.ts';

export interface MembershipOptions {
  defaultCapacity: number;
  /** Most sessions of one user in one room (ROOM_MAX_SESSIONS_PER_USER). */
  maxSessionsPerUser: number;
  reconnectWindowMs: number;
  gatewayDeadAfterMs: number;
}

export class Membership {
  readonly #db: Db;
  readonly #onEvents: () => void;
  readonly #joins: Joins;
  readonly #leaves: Leaves;
  readonly #reconnects: Reconnects;
  readonly #announce: Announcements;

  constructor(
    db: Database,
    opts: MembershipOptions,
    ladder: UserMediaLadder,
    notify: Notifier,
    metrics: MembershipMetrics,
    log: Logger,
    /** Told after a transaction that may have written room events (the outbox relay). */
    onEvents: () => void = () => undefined,
  ) {
    this.#onEvents = onEvents;
    this.#db = db.prisma;
    const announce = new Announcements({ notify, ladder });
    this.#announce = announce;
    const transaction = async <T>(d: Deadline, work: (tx: Tx) => Promise<T>): Promise<T> =>
      await this.#tx(d, work);
    this.#joins = new Joins({
      sql: db.sql,
      defaultCapacity: opts.defaultCapacity,
      maxSessionsPerUser: opts.maxSessionsPerUser,
      ladder,
      announce,
      onEvents,
    });
    this.#leaves = new Leaves(db.prisma, db.sql, {
      reconnectWindowMs: opts.reconnectWindowMs,
      announce,
      metrics,
      onEvents,
      transaction,
    });
    this.#reconnects = new Reconnects(db.prisma, {
      defaultCapacity: opts.defaultCapacity,
      gatewayDeadAfterMs: opts.gatewayDeadAfterMs,
      announce,
      metrics,
      transaction,
      log: log.child({ component: 'membership' }),
    });
  }

  /**
   * A transaction bounded by `d` after which the outbox relay is told (it may have written
   * room events): how every change of membership, rooms and tracks is made.
   */
  async transaction<T>(d: Deadline, work: (tx: Tx) => Promise<T>): Promise<T> {
    return await this.#tx(d, work);
  }

  /** Admit a new session into its room (Joins). */
  async join(req: RoomsJoinRequest, d: Deadline): Promise<RoomsJoinReply> {
    return await this.#joins.join(req, d);
  }

  /**
   * A connection closed. With `leave`, the session ends now (peers get eventLeave);
   * otherwise it enters its reconnect window. Does nothing when the connection is no
   * longer the session's (it was replaced, or the session already ended).
   */
  async disconnect(
    req: RpcRequest<typeof Rooms.disconnect>,
    d: Deadline,
  ): Promise<{ applied: boolean }> {
    return req.leave
      ? await this.#leaves.leave(req, d)
      : await this.#reconnects.disconnected(req, d);
  }

  /** End every session whose reconnect window has passed (Leaves). */
  async expire(d: Deadline): Promise<number> {
    return await this.#leaves.expire(d);
  }

  /** The server API ends sessions of a room, or deletes it (Leaves). */
  async removeByApi(...args: Parameters<Leaves['removeByApi']>): Promise<number> {
    return await this.#leaves.removeByApi(...args);
  }

  /** Close rooms whose empty timeout has passed (Leaves). */
  async closeEmptyRooms(d: Deadline): Promise<number> {
    return await this.#leaves.closeEmptyRooms(d);
  }

  /** A session, for whoever proves it may resume it (Reconnects). */
  async lookup(req: RpcRequest<typeof Rooms.lookup>): Promise<SessionInfo> {
    return await this.#reconnects.lookup(req);
  }

  /** Attach a new connection to a session (Reconnects). */
  async reconnect(
    req: RpcRequest<typeof Rooms.reconnect>,
    d: Deadline,
  ): Promise<RpcReply<typeof Rooms.reconnect>> {
    return await this.#reconnects.reconnect(req, d);
  }

  /** Re-attach what a gateway still holds, report the rest gone (Reconnects). */
  async resync(req: RpcRequest<typeof Rooms.resync>): Promise<RpcReply<typeof Rooms.resync>> {
    return await this.#reconnects.resync(req);
  }

  /** Record a gateway's heartbeat; a restart detaches its old sessions (Reconnects). */
  async gatewayHeartbeat(gatewayId: string, startedAt: number, sockets: number): Promise<void> {
    await this.#reconnects.gatewayHeartbeat(gatewayId, startedAt, sockets);
  }

  /** Sessions of silent gateways enter their reconnect window (Reconnects). */
  async detachDeadGateways(): Promise<number> {
    return await this.#reconnects.detachDeadGateways();
  }

  /**
   * A fresher token for an attached session: its expiry and grants replace the old ones (the
   * server API's changes still apply over them). Returns the grants in force.
   */
  async refresh(
    req: RpcRequest<typeof Rooms.refresh>,
    d: Deadline,
  ): Promise<RpcReply<typeof Rooms.refresh>> {
    d.signal.throwIfAborted();
    const rows = await this.#db.$queryRaw<{ grantOverride: unknown }[]>`
      UPDATE sessions
      SET token_expires_at = ${new Date(req.tokenExpiresAt)},
          grants = ${JSON.stringify(req.grants)}::jsonb,
          hidden = COALESCE((grant_override->>'hidden')::boolean, ${req.grants.hidden})
      WHERE socket_id = ${req.socketId} AND connection_id = ${req.connectionId}
        AND state = 'ACTIVE'
      RETURNING grant_override AS "grantOverride"`;
    const row = rows[0];
    if (row === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
    return { grants: effectiveGrants(req.grants, row.grantOverride) };
  }

  /** Record a new orientation and tell the room. */
  async orientation(req: RpcRequest<typeof Rooms.orientation>, d: Deadline): Promise<void> {
    d.signal.throwIfAborted();
    const rows = await this.#db.$queryRaw<
      { roomId: string; userId: string; platform: string; hidden: boolean }[]
    >`
      UPDATE sessions SET orientation = ${req.orientation}, camera = ${req.camera}, last_seen = ${NOW}
      WHERE socket_id = ${req.socketId} AND connection_id = ${req.connectionId} AND state = 'ACTIVE'
      RETURNING room_id AS "roomId", user_id AS "userId", platform, hidden`;
    const s = rows[0];
    if (s === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
    if (s.hidden) return;
    this.#announce.orientationChanged(s.roomId, {
      from: { socketId: req.socketId, userId: s.userId },
      platform: s.platform,
      orientation: req.orientation,
      camera: req.camera,
    });
  }

  /** Record clients' latest eventCpu, one statement for all of them. */
  async recordCpu(
    entries: readonly { socketId: string; cpuUsed: number; at: number }[],
  ): Promise<void> {
    if (entries.length === 0) return;
    await this.#db.$executeRaw`
      UPDATE sessions s
      SET cpu_used = c.cpu_used, cpu_at = c.cpu_at, last_seen = ${NOW}
      FROM unnest(${entries.map((e) => e.socketId)}::text[], ${entries.map((e) => e.cpuUsed)}::int[],
                  ${entries.map((e) => new Date(e.at))}::timestamp(3)[]) AS c(socket_id, cpu_used, cpu_at)
      WHERE s.socket_id = c.socket_id`;
  }

  /** An interactive transaction bounded by the request's deadline (see dbError for its failures). */
  async #tx<T>(d: Deadline, work: (tx: Tx) => Promise<T>): Promise<T> {
    d.signal.throwIfAborted();
    const remaining = Math.max(1, d.deadline - Date.now());
    const result = await this.#db.$transaction(work, { maxWait: remaining, timeout: remaining });
    this.#onEvents();
    return result;
  }
}
