/**
 * The reconnect window: a session that lost its connection stays in its room, DISCONNECTED,
 * for RECONNECT_WINDOW_MS, and a new connection that proves it may (the resume token) takes
 * it over. A session enters the window when its connection closes without `leave`, when its
 * gateway restarts, or when its gateway goes silent; it leaves it by a reconnect, by its
 * gateway's resync, or — the window passed — by ending (`expire`, leave.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '@switchboard/service';
import {
  ProtocolError,
  type Rooms,
  type RpcReply,
  type RpcRequest,
  type SessionInfo,
  type SessionState,
} from '@switchboard/protocol';
import { NOW, type Db, type Transaction, type Tx } from '../db/client.ts';
import type { Deadline } from '../db/sql.ts';
import { Prisma } from '../generated/prisma/client.ts';
import type { Announcements } from './announcements.ts';
import { authOf } from './grants.ts';
import type { MembershipMetrics } from './metrics.ts';

interface SessionRow {
  socketId: string;
  roomId: string;
  userId: string;
  platform: string;
  gatewayId: string;
  connectionId: string;
  state: 'ACTIVE' | 'DISCONNECTED';
  resumeHash: string;
  tokenExpiresAt: Date | null;
  grants: unknown;
  grantOverride: unknown;
}

/**
 * Whether `proof` resumes a session whose stored hash is `stored`: the same hash (compared
 * in constant time), or `null` (the gateway's legacy mode, socketId alone).
 */
function proofMatches(proof: string | null, stored: string): boolean {
  if (proof === null) return true;
  const a = Buffer.from(proof, 'utf8');
  const b = Buffer.from(stored, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

function wireState(s: 'ACTIVE' | 'DISCONNECTED'): SessionState {
  return s === 'ACTIVE' ? 'active' : 'disconnected';
}

export interface ReconnectsOptions {
  /** ROOM_DEFAULT_CAPACITY: the capacity of a room without its own. */
  defaultCapacity: number;
  /** GATEWAY_DEAD_AFTER_MS: a gateway silent this long is dead. */
  gatewayDeadAfterMs: number;
  announce: Announcements;
  metrics: Pick<MembershipMetrics, 'deadGatewaySessions' | 'resumeRefused'>;
  /** Membership.transaction. */
  transaction: Transaction;
  log: Logger;
}

export class Reconnects {
  readonly #db: Db;
  readonly #opts: ReconnectsOptions;
  readonly #log: Logger;

  constructor(db: Db, opts: ReconnectsOptions) {
    this.#db = db;
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** A session by socketId, for whoever proves it may resume it (see Rooms.lookup). */
  async lookup(req: RpcRequest<typeof Rooms.lookup>): Promise<SessionInfo> {
    const s = await this.#db.session.findUnique({
      where: { socketId: req.socketId },
      select: {
        socketId: true,
        roomId: true,
        userId: true,
        platform: true,
        state: true,
        resumeHash: true,
        tokenExpiresAt: true,
        grants: true,
        grantOverride: true,
      },
    });
    if (s === null) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
    if (!proofMatches(req.resumeHash, s.resumeHash)) {
      this.#opts.metrics.resumeRefused.inc();
      throw new ProtocolError('AUTH_FAILED', 'wrong resume token');
    }
    return {
      socketId: s.socketId,
      roomId: s.roomId,
      userId: s.userId,
      platform: s.platform,
      state: wireState(s.state),
      ...authOf(s),
    };
  }

  /**
   * Attach a new connection to a session: one in its reconnect window, or one still
   * attached elsewhere (a stale socket the client gave up on), which is then detached.
   */
  async reconnect(
    req: RpcRequest<typeof Rooms.reconnect>,
    d: Deadline,
  ): Promise<RpcReply<typeof Rooms.reconnect>> {
    const { previous, size, roomSeq } = await this.#opts.transaction(d, async (tx) => {
      // The room, then the session (the lock order: join.ts).
      if ((await this.#lockRoom(tx, req.roomId)) === undefined) {
        throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      }
      const rows = await tx.$queryRaw<SessionRow[]>`
        SELECT socket_id AS "socketId", room_id AS "roomId", user_id AS "userId", platform,
               gateway_id AS "gatewayId", connection_id AS "connectionId", state::text AS state,
               resume_hash AS "resumeHash", token_expires_at AS "tokenExpiresAt", grants,
               grant_override AS "grantOverride"
        FROM sessions WHERE socket_id = ${req.socketId} FOR UPDATE`;
      const s = rows[0];
      if (s === undefined || s.roomId !== req.roomId) {
        throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      }
      // Checked again under the lock: of two reconnects with one token, one wins.
      if (!proofMatches(req.resumeHash, s.resumeHash)) {
        this.#opts.metrics.resumeRefused.inc();
        throw new ProtocolError('AUTH_FAILED', 'wrong resume token');
      }
      const auth = req.auth;
      await tx.$executeRaw`
        UPDATE sessions
        SET state = 'ACTIVE', gateway_id = ${req.gatewayId}, connection_id = ${req.connectionId},
            gateway_started_at = ${req.gatewayStartedAt ?? null}::bigint,
            attached_at = ${NOW}, last_seen = ${NOW}, disconnected_at = NULL,
            ip = COALESCE(${req.ip ?? null}, ip), resume_hash = ${req.nextResumeHash},
            token_expires_at = COALESCE(${auth === undefined ? null : new Date(auth.tokenExpiresAt)}::timestamp(3), token_expires_at),
            grants = COALESCE(${auth === undefined ? null : JSON.stringify(auth.grants)}::jsonb, grants),
            hidden = COALESCE((grant_override->>'hidden')::boolean,
                              ${auth === undefined ? null : auth.grants.hidden}::boolean, hidden)
        WHERE socket_id = ${req.socketId}`;
      const counts = await tx.$queryRaw<{ size: number; roomSeq: number }[]>`
        SELECT (SELECT count(*)::int FROM sessions WHERE room_id = ${req.roomId}) AS size,
               sb_broadcast_seq(${req.roomId})::float8 AS "roomSeq"`;
      return { previous: s, size: counts[0]?.size ?? 1, roomSeq: counts[0]?.roomSeq ?? 0 };
    });
    if (previous.state === 'ACTIVE' && previous.connectionId !== req.connectionId) {
      this.#opts.announce.detach(previous, 'replaced');
    }
    return {
      session: {
        socketId: previous.socketId,
        roomId: previous.roomId,
        userId: previous.userId,
        platform: previous.platform,
        state: 'active',
        ...authOf(
          req.auth === undefined
            ? previous
            : { ...previous, ...req.auth, tokenExpiresAt: new Date(req.auth.tokenExpiresAt) },
        ),
      },
      roomSize: size,
      roomSeq,
    };
  }

  /**
   * The session's connection closed without `leave`: the session enters its reconnect
   * window, unless the connection is no longer the session's.
   */
  async disconnected(
    req: RpcRequest<typeof Rooms.disconnect>,
    d: Deadline,
  ): Promise<{ applied: boolean }> {
    d.signal.throwIfAborted();
    const n = await this.#db.$executeRaw`
      UPDATE sessions SET state = 'DISCONNECTED', disconnected_at = ${NOW}, last_seen = ${NOW}
      WHERE socket_id = ${req.socketId} AND connection_id = ${req.connectionId}
        AND state = 'ACTIVE'`;
    return { applied: n > 0 };
  }

  /** See Rooms.resync: re-attach what the gateway still holds, report the rest gone. */
  async resync(req: RpcRequest<typeof Rooms.resync>): Promise<RpcReply<typeof Rooms.resync>> {
    if (req.sessions.length === 0) return { gone: [] };
    const socketIds = req.sessions.map((s) => s.socketId);
    const connectionIds = req.sessions.map((s) => s.connectionId);
    const kept = await this.#db.$queryRaw<{ socketId: string }[]>`
      UPDATE sessions s
      SET state = 'ACTIVE', gateway_id = ${req.gatewayId},
          gateway_started_at = ${req.gatewayStartedAt ?? null}::bigint,
          -- Attached again now, as a reconnect is: the dead-gateway sweep leaves a session
          -- attached less than GATEWAY_DEAD_AFTER_MS ago alone, so one that runs before the
          -- gateway's heartbeat (sent with this resync) is recorded cannot detach it again.
          attached_at = ${NOW}, disconnected_at = NULL, last_seen = ${NOW}
      FROM unnest(${socketIds}::text[], ${connectionIds}::text[]) AS a(socket_id, connection_id)
      WHERE s.socket_id = a.socket_id AND s.connection_id = a.connection_id
      RETURNING s.socket_id AS "socketId"`;
    const keptIds = new Set(kept.map((k) => k.socketId));
    const gone = req.sessions.filter((s) => !keptIds.has(s.socketId));
    if (gone.length > 0 || kept.length > 0) {
      this.#log.info(
        { gatewayId: req.gatewayId, kept: kept.length, gone: gone.length },
        'gateway resynced',
      );
    }
    return { gone };
  }

  /**
   * A gateway's heartbeat: record it (its time by the database's clock). A later `startedAt`
   * than the one recorded means the gateway restarted: sessions attached through an earlier
   * process of it lost their sockets. `startedAt` is the gateway's own clock and is compared
   * only with its own earlier values (and with the sessions' `gateway_started_at`, the same
   * clock); an older one is a late heartbeat of a process already replaced, and is ignored.
   */
  async gatewayHeartbeat(gatewayId: string, startedAt: number, sockets: number): Promise<void> {
    const rows = await this.#db.$queryRaw<{ restarted: boolean }[]>`
      WITH prev AS (SELECT started_at FROM gateways WHERE id = ${gatewayId})
      INSERT INTO gateways AS g (id, started_at, last_seen, sockets)
      VALUES (${gatewayId}, ${new Date(startedAt)}, ${NOW}, ${sockets})
      ON CONFLICT (id) DO UPDATE
        SET started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen, sockets = EXCLUDED.sockets
        WHERE EXCLUDED.started_at >= g.started_at
      RETURNING (SELECT started_at FROM prev) < g.started_at AS restarted`;
    if (rows[0]?.restarted === true) {
      const n = await this.#db.$executeRaw`
        UPDATE sessions SET state = 'DISCONNECTED', disconnected_at = ${NOW}
        WHERE gateway_id = ${gatewayId} AND state = 'ACTIVE'
          AND (gateway_started_at IS NULL OR gateway_started_at < ${startedAt})`;
      this.#log.warn(
        { gatewayId, sessions: n },
        'gateway restarted; its old sessions lost their sockets',
      );
    }
  }

  /**
   * Sessions attached to gateways that stopped sending heartbeats lost their sockets:
   * they enter the reconnect window, which starts at the gateway's last heartbeat.
   */
  async detachDeadGateways(): Promise<number> {
    const deadAfter = Prisma.sql`${NOW} - make_interval(secs => ${this.#opts.gatewayDeadAfterMs / 1000})`;
    const n = await this.#db.$executeRaw`
      UPDATE sessions s
      SET state = 'DISCONNECTED',
          disconnected_at = COALESCE((SELECT g.last_seen FROM gateways g WHERE g.id = s.gateway_id), ${NOW})
      WHERE s.state = 'ACTIVE' AND s.attached_at < ${deadAfter}
        AND NOT EXISTS (
          SELECT 1 FROM gateways g WHERE g.id = s.gateway_id AND g.last_seen >= ${deadAfter})`;
    if (n > 0) {
      this.#opts.metrics.deadGatewaySessions.inc(n);
      this.#log.warn({ sessions: n }, 'sessions of dead gateways entered their reconnect window');
    }
    await this.#db.$executeRaw`
      DELETE FROM gateways WHERE last_seen < ${NOW} - interval '1 day'`;
    return n;
  }

  /** Lock the room's row; its capacity in force, or undefined if there is no such room. */
  async #lockRoom(tx: Tx, roomId: string): Promise<number | undefined> {
    const rows = await tx.$queryRaw<{ capacity: number | null }[]>`
      SELECT capacity FROM rooms WHERE id = ${roomId} FOR UPDATE`;
    const r = rows[0];
    if (r === undefined) return undefined;
    return r.capacity ?? this.#opts.defaultCapacity;
  }
}
