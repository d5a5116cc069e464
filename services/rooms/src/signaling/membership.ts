/**
 * Room membership in PostgreSQL: who is in which room, attached to which gateway through
 * which connection. Every change that alters a room's size runs in a transaction holding
 * the room's row lock (`SELECT … FOR UPDATE`), so concurrent joins never admit more than
 * the capacity and a leave's reported size is exact. Lock order is always room, then
 * session, so no two transactions can deadlock on each other.
 *
 * After a change commits, the room hears about it: eventJoin, eventLeave,
 * eventUserMediaConfiguration (when the size moves onto another ladder step) and
 * eventOrientationChange go out as room broadcasts; a replaced or expired connection is told
 * to its gateway to close.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '@switchboard/service';
import {
  MEMBERS_PAGE_MAX,
  ProtocolError,
  sessionGrants,
  validator,
  withGrantOverride,
  SessionGrants,
  TokenGrants,
  type RoomsJoinReply,
  type RoomState,
  type RoomsJoinRequest,
  type RpcReply,
  type RpcRequest,
  type SessionAuth,
  type SessionInfo,
  type SessionState,
  type UserMediaConfiguration,
  type EventFrameMessage,
  type Rooms,
  type LeaveReason,
} from '@switchboard/protocol';
import { Prisma } from '../generated/prisma/client.ts';
import type { Database, Db } from '../db/client.ts';
import type { Deadline, Sql, Statement } from '../db/sql.ts';
import { recordEvent, type EventPayload } from '../events/outbox.ts';
import type { MembershipMetrics } from './metrics.ts';
import type { Notifier } from './notifier.ts';
import type { UserMediaLadder } from './ladder.ts';

export type Tx = Prisma.TransactionClient;

export interface MembershipOptions {
  defaultCapacity: number;
  /** Most sessions of one user in one room (ROOM_MAX_SESSIONS_PER_USER). */
  maxSessionsPerUser: number;
  reconnectWindowMs: number;
  gatewayDeadAfterMs: number;
}

/** `now()` in UTC as `timestamp(3)`: how Prisma stores DateTime in these columns. */
export const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;
const EXPIRE_BATCH = 200;

/** See the SQL functions of the migration `signaling_functions`. */
const JOIN: Statement = {
  name: 'sb_join',
  text: `SELECT room_size AS "roomSize", room_seq::float8 AS "roomSeq", sessions,
    sessions_next AS "sessionsNext" FROM sb_join(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22, $23, $24)`,
};
const REMOVE: Statement = {
  name: 'sb_remove',
  text: `SELECT $1::text AS "roomId", ${leftColumns()}
    FROM sb_remove($1, $2, NULL, $3, $4, $5, $6)`,
};
/** The most members a RoomState lists (a few hundred KiB at most, well under NATS's limit). */
const ROOM_STATE_SESSIONS = 1000;
const ROOM_STATE: Statement = {
  name: 'sb_room_state',
  text: `SELECT sb_broadcast_seq($1)::float8 AS "roomSeq",
    (SELECT count(*)::int FROM sessions WHERE room_id = $1) AS "roomSize",
    (SELECT count(*)::int FROM sessions WHERE room_id = $1 AND NOT hidden) AS visible,
    (SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
              'socketId', o.socket_id, 'userId', o.user_id, 'name', o.name,
              'metadata', o.metadata)) ORDER BY o.joined_at, o.socket_id), '[]'::jsonb)
     FROM (SELECT socket_id, user_id, name, metadata, joined_at FROM sessions
           WHERE room_id = $1 AND NOT hidden ORDER BY joined_at, socket_id LIMIT $2) o)
      AS sessions`,
};
const MEMBERS: Statement = {
  name: 'sb_members',
  text: `SELECT socket_id AS "socketId", user_id AS "userId", name, metadata,
      sb_member_cursor(joined_at, socket_id) AS cursor
    FROM sessions
    WHERE room_id = $1 AND NOT hidden AND socket_id <> $2
      AND (joined_at, socket_id) > ('epoch'::timestamp + $3::bigint * interval '1 ms', $4::text)
    ORDER BY joined_at, socket_id LIMIT $5`,
};
const LEAVE: Statement = {
  name: 'sb_leave',
  text: `SELECT ${leftColumns('room_id AS "roomId", ')} FROM sb_leave($1, $2)`,
};

/** sb_remove's columns as `Left`'s fields. */
function leftColumns(extra = ''): string {
  return `${extra}socket_id AS "socketId", user_id AS "userId", gateway_id AS "gatewayId",
    connection_id AS "connectionId", hidden, size_before AS "sizeBefore",
    size_after AS "sizeAfter", room_seq::float8 AS "roomSeq"`;
}

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

const grantsOf = validator(SessionGrants);
const overrideOf = validator(TokenGrants);

/** A session's grants in force: its token's, with the server API's override (if any) applied. */
export function effectiveGrants(token: SessionGrants, override: unknown): SessionGrants {
  if (override === null || override === undefined) return token;
  const o = overrideOf.parse(override);
  return withGrantOverride(token, o.ok ? o.value : undefined);
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

/** The auth fields of a session row, as SessionInfo carries them (grants in force). */
function authOf(row: {
  tokenExpiresAt: Date | null;
  grants: unknown;
  grantOverride: unknown;
}): SessionAuth {
  // Rows from before tokens were kept have none: expired, with a member's defaults.
  const parsed = grantsOf.parse(row.grants);
  return {
    tokenExpiresAt: row.tokenExpiresAt?.getTime() ?? 0,
    grants: effectiveGrants(parsed.ok ? parsed.value : sessionGrants(undefined), row.grantOverride),
  };
}

/** A session that ended: who, and the room's size afterwards. */
interface Left {
  roomId: string;
  socketId: string;
  userId: string;
  hidden: boolean;
  gatewayId: string;
  connectionId: string;
  sizeBefore: number;
  sizeAfter: number;
  /** The broadcast number of its eventLeave (see sb_remove). */
  roomSeq: number;
}

export class Membership {
  readonly #db: Db;
  readonly #sql: Sql;
  readonly #opts: MembershipOptions;
  readonly #ladder: UserMediaLadder;
  readonly #notify: Notifier;
  readonly #metrics: MembershipMetrics;
  readonly #log: Logger;

  readonly #onEvents: () => void;

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
    this.#sql = db.sql;
    this.#opts = opts;
    this.#ladder = ladder;
    this.#notify = notify;
    this.#metrics = metrics;
    this.#log = log.child({ component: 'membership' });
  }

  /**
   * A transaction bounded by `d` after which the outbox relay is told (it may have written
   * room events): how every change of membership, rooms and tracks is made.
   */
  async transaction<T>(d: Deadline, work: (tx: Tx) => Promise<T>): Promise<T> {
    return await this.#tx(d, work);
  }

  /** Admit a new session into its room, creating the room on its first join. */
  async join(req: RoomsJoinRequest, d: Deadline): Promise<RoomsJoinReply> {
    // One statement: the hot path of a join (see sb_join).
    const event: Omit<EventPayload<'room.join'>, 'roomSize'> = {
      roomId: req.roomId,
      socketId: req.socketId,
      userId: req.userId,
      platform: req.platform,
      ...(req.appVersion === undefined ? {} : { appVersion: req.appVersion }),
      ...(req.version === undefined ? {} : { version: req.version }),
      ...(req.ip === undefined ? {} : { ip: req.ip }),
      bitrate: req.bitrate ?? null,
    };
    const rows = await this.#sql.query<{
      roomSize: number;
      roomSeq: number;
      sessions: RoomsJoinReply['sessions'];
      sessionsNext: string | null;
    }>(
      JOIN,
      [
        req.roomId,
        req.socketId,
        req.userId,
        req.platform,
        req.deviceName ?? null,
        req.networkType ?? null,
        req.version ?? null,
        req.appVersion ?? null,
        req.orientation ?? null,
        req.camera ?? null,
        req.ip ?? null,
        req.gatewayId,
        req.gatewayStartedAt ?? null,
        req.connectionId,
        req.resumeHash,
        new Date(req.tokenExpiresAt).toISOString(),
        JSON.stringify(req.grants),
        req.grants.hidden,
        req.name ?? null,
        req.metadata ?? null,
        JSON.stringify(event),
        this.#opts.defaultCapacity,
        this.#opts.maxSessionsPerUser,
        MEMBERS_PAGE_MAX,
      ],
      d,
    );
    this.#onEvents();
    const row = rows[0];
    if (row === undefined) throw new Error('sb_join returned no row');
    const size = row.roomSize;
    // The others hear who arrived (a hidden member arrives for nobody), with the media
    // configuration of the room's new size if that changed: one broadcast, one number.
    const change = this.#ladder.change(size - 1, size);
    const config =
      change === undefined ? [] : [{ a: 'eventUserMediaConfiguration' as const, d: change }];
    if (!req.grants.hidden) {
      this.#notify.broadcast({
        roomId: req.roomId,
        except: req.socketId,
        seq: row.roomSeq,
        event: {
          a: 'eventJoin',
          d: {
            roomId: req.roomId,
            roomSize: size,
            socketId: req.socketId,
            userId: req.userId,
            ...(req.name === undefined ? {} : { name: req.name }),
            ...(req.metadata === undefined ? {} : { metadata: req.metadata }),
          },
        },
        ...(config.length === 0 ? {} : { more: config }),
      });
    } else if (change !== undefined) {
      this.#userMedia(req.roomId, change, req.socketId);
    }
    return {
      socketId: req.socketId,
      roomSize: size,
      userMediaConfiguration: this.#ladder.configuration(size),
      sessions: row.sessions,
      ...(row.sessionsNext === null ? {} : { sessionsNext: row.sessionsNext }),
      roomSeq: row.roomSeq,
    };
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
      this.#metrics.resumeRefused.inc();
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
    const { previous, size, roomSeq } = await this.#tx(d, async (tx) => {
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
        this.#metrics.resumeRefused.inc();
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
      this.#notify.control(previous.gatewayId, {
        type: 'detach',
        socketId: previous.socketId,
        connectionId: previous.connectionId,
        reason: 'replaced',
      });
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

  /** A page of the room's visible members but `req.socketId`, after `req.after`. */
  async members(
    req: RpcRequest<typeof Rooms.members>,
    d: Deadline,
  ): Promise<RpcReply<typeof Rooms.members>> {
    const dot = req.after.indexOf('.');
    const rows = await this.#sql.query<{
      socketId: string;
      userId: string;
      name: string | null;
      metadata: string | null;
      cursor: string;
    }>(
      MEMBERS,
      [req.roomId, req.socketId, req.after.slice(0, dot), req.after.slice(dot + 1), req.limit + 1],
      d,
    );
    const page = rows.slice(0, req.limit);
    const last = page.at(-1);
    return {
      sessions: page.map((r) => ({
        socketId: r.socketId,
        userId: r.userId,
        ...(r.name === null ? {} : { name: r.name }),
        ...(r.metadata === null ? {} : { metadata: r.metadata }),
      })),
      ...(rows.length > req.limit && last !== undefined ? { next: last.cursor } : {}),
    };
  }

  /**
   * The room as its members should see it now, with the broadcast number it includes (one
   * statement: one snapshot). At most ROOM_STATE_SESSIONS members are listed.
   */
  async roomState(roomId: string, d: Deadline): Promise<RoomState> {
    const rows = await this.#sql.query<{
      roomSeq: number;
      roomSize: number;
      visible: number;
      sessions: RoomState['sessions'];
    }>(ROOM_STATE, [roomId, ROOM_STATE_SESSIONS], d);
    const row = rows[0];
    if (row === undefined) throw new Error('the room state query returned no row');
    return {
      roomId,
      roomSeq: row.roomSeq,
      roomSize: row.roomSize,
      sessions: row.sessions,
      complete: row.sessions.length === row.visible,
      userMediaConfiguration: this.#ladder.configuration(Math.max(1, row.roomSize)),
    };
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

  /**
   * A connection closed. With `leave`, the session ends now (peers get eventLeave);
   * otherwise it enters its reconnect window. Does nothing when the connection is no
   * longer the session's (it was replaced, or the session already ended).
   */
  async disconnect(
    req: RpcRequest<typeof Rooms.disconnect>,
    d: Deadline,
  ): Promise<{ applied: boolean }> {
    if (!req.leave) {
      d.signal.throwIfAborted();
      const n = await this.#db.$executeRaw`
        UPDATE sessions SET state = 'DISCONNECTED', disconnected_at = ${NOW}, last_seen = ${NOW}
        WHERE socket_id = ${req.socketId} AND connection_id = ${req.connectionId}
          AND state = 'ACTIVE'`;
      return { applied: n > 0 };
    }
    // One statement (see sb_leave).
    const left = await this.#sql.query<Left>(LEAVE, [req.socketId, req.connectionId], d);
    this.#onEvents();
    this.#metrics.ended.inc({ reason: 'left' }, left.length);
    this.#announceLeaves(left);
    return { applied: left.length > 0 };
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
    this.#notify.broadcast({
      roomId: s.roomId,
      except: req.socketId,
      event: {
        a: 'eventOrientationChange',
        d: {
          from: { socketId: req.socketId, userId: s.userId },
          platform: s.platform,
          orientation: req.orientation,
          camera: req.camera,
        },
      },
    });
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
      this.#metrics.deadGatewaySessions.inc(n);
      this.#log.warn({ sessions: n }, 'sessions of dead gateways entered their reconnect window');
    }
    await this.#db.$executeRaw`
      DELETE FROM gateways WHERE last_seen < ${NOW} - interval '1 day'`;
    return n;
  }

  /** End every session whose reconnect window has passed; returns how many ended. */
  async expire(d: Deadline): Promise<number> {
    const cutoff = Prisma.sql`${NOW} - make_interval(secs => ${this.#opts.reconnectWindowMs / 1000})`;
    const rooms = await this.#db.$queryRaw<{ roomId: string }[]>`
      SELECT DISTINCT room_id AS "roomId" FROM sessions
      WHERE state = 'DISCONNECTED' AND disconnected_at < ${cutoff}
      LIMIT ${EXPIRE_BATCH}`;
    let ended = 0;
    for (const { roomId } of rooms) {
      if (d.signal.aborted) break;
      // Another replica may be sweeping this room (or a join holds it): skipped this time.
      const left = await this.#remove(
        roomId,
        null,
        'expired',
        { windowMs: this.#opts.reconnectWindowMs, skipLocked: true },
        d,
      );
      for (const l of left) {
        // The socket may still be open if its gateway was only cut off for a while.
        this.#notify.control(l.gatewayId, {
          type: 'detach',
          socketId: l.socketId,
          connectionId: l.connectionId,
          reason: 'expired',
        });
      }
      this.#metrics.ended.inc({ reason: 'expired' }, left.length);
      this.#announceLeaves(left);
      ended += left.length;
    }
    return ended;
  }

  /**
   * The server API ends sessions of a room (`socketIds`, or all of them): each is removed —
   * its client told why with a close code and unable to resume, its peers told it left.
   * `deleted` also deletes the room. ROOM_NOT_FOUND when the room does not exist.
   */
  async removeByApi(
    roomId: string,
    socketIds: readonly string[] | null,
    reason: 'removed' | 'deleted',
    message: string | undefined,
    d: Deadline,
  ): Promise<number> {
    // `deleted` closes the room even when nobody was in it.
    const left = await this.#remove(roomId, socketIds, reason, { mustExist: true }, d);
    for (const l of left) {
      this.#notify.control(l.gatewayId, {
        type: 'detach',
        socketId: l.socketId,
        connectionId: l.connectionId,
        reason,
        ...(message === undefined ? {} : { message }),
      });
    }
    this.#metrics.ended.inc({ reason }, left.length);
    this.#announceLeaves(left);
    return left.length;
  }

  /**
   * Close rooms whose empty timeout has passed (rooms the server API created, or that an
   * operator gave one); returns how many closed.
   */
  async closeEmptyRooms(d: Deadline): Promise<number> {
    const due = await this.#db.$queryRaw<{ id: string }[]>`
      SELECT id FROM rooms
      WHERE empty_since IS NOT NULL AND empty_timeout_s IS NOT NULL
        AND empty_since < ${NOW} - make_interval(secs => empty_timeout_s)
      LIMIT ${EXPIRE_BATCH}`;
    let closed = 0;
    for (const { id } of due) {
      if (d.signal.aborted) break;
      const done = await this.#tx(d, async (tx) => {
        // Re-checked under the lock: a join may have come (and cleared empty_since).
        const locked = await tx.$queryRaw<{ id: string }[]>`
          SELECT id FROM rooms
          WHERE id = ${id} AND empty_since IS NOT NULL AND empty_timeout_s IS NOT NULL
            AND empty_since < ${NOW} - make_interval(secs => empty_timeout_s)
          FOR UPDATE SKIP LOCKED`;
        if (locked.length === 0) return false;
        await this.#close(tx, id);
        return true;
      });
      if (done) closed++;
    }
    return closed;
  }

  /**
   * End sessions of `roomId` in one statement (see sb_remove): `socketIds` (null: all of
   * them), with `windowMs` only those whose reconnect window has passed; `skipLocked` leaves
   * a room another transaction holds alone; `mustExist` fails with ROOM_NOT_FOUND. Each is
   * reported with the room's size after it left.
   */
  async #remove(
    roomId: string,
    socketIds: readonly string[] | null,
    reason: LeaveReason,
    opts: { windowMs?: number; skipLocked?: boolean; mustExist?: boolean },
    d: Deadline,
  ): Promise<Left[]> {
    const left = await this.#sql.query<Left>(
      REMOVE,
      [
        roomId,
        socketIds === null ? null : [...socketIds],
        opts.windowMs ?? null,
        reason,
        opts.skipLocked ?? false,
        opts.mustExist ?? false,
      ],
      d,
    );
    this.#onEvents();
    return left;
  }

  /** Delete a locked room's row and record room.closed. */
  async #close(tx: Tx, roomId: string): Promise<void> {
    await tx.$executeRaw`DELETE FROM rooms WHERE id = ${roomId}`;
    await recordEvent(tx, 'room.closed', { roomId });
  }

  /**
   * Tell each room who left: the leaves of one broadcast number in one broadcast, the media
   * configuration of the room's final size (if its step changed) with the last of them.
   */
  #announceLeaves(left: readonly Left[]): void {
    const byRoom = new Map<string, Left[]>();
    for (const l of left) {
      const gone = byRoom.get(l.roomId);
      if (gone === undefined) byRoom.set(l.roomId, [l]);
      else gone.push(l);
    }
    for (const [roomId, gone] of byRoom) {
      const first = gone[0];
      const last = gone.at(-1);
      if (first === undefined || last === undefined) continue;
      const change = this.#ladder.change(first.sizeBefore, last.sizeAfter);
      const groups = new Map<number, EventFrameMessage[]>();
      for (const l of gone) {
        if (l.hidden) continue;
        const events = groups.get(l.roomSeq) ?? [];
        events.push({
          a: 'eventLeave',
          d: { roomId, roomSize: l.sizeAfter, socketId: l.socketId, userId: l.userId },
        });
        groups.set(l.roomSeq, events);
      }
      if (groups.size === 0) {
        if (change !== undefined) this.#userMedia(roomId, change);
        continue;
      }
      const seqs = [...groups.keys()].sort((a, b) => a - b);
      for (const seq of seqs) {
        const [event, ...more] = groups.get(seq) ?? [];
        if (event === undefined) continue;
        if (seq === seqs.at(-1) && change !== undefined) {
          more.push({ a: 'eventUserMediaConfiguration', d: change });
        }
        this.#notify.broadcast({
          roomId,
          seq,
          event,
          ...(more.length === 0 ? {} : { more }),
        });
      }
    }
  }

  #userMedia(roomId: string, config: UserMediaConfiguration, except?: string): void {
    this.#notify.broadcast({
      roomId,
      ...(except === undefined ? {} : { except }),
      event: { a: 'eventUserMediaConfiguration', d: config },
    });
  }

  /** Lock the room's row; its capacity in force, or undefined if there is no such room. */
  async #lockRoom(tx: Tx, roomId: string): Promise<number | undefined> {
    const rows = await tx.$queryRaw<{ capacity: number | null }[]>`
      SELECT capacity FROM rooms WHERE id = ${roomId} FOR UPDATE`;
    const r = rows[0];
    if (r === undefined) return undefined;
    return r.capacity ?? this.#opts.defaultCapacity;
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

function wireState(s: 'ACTIVE' | 'DISCONNECTED'): SessionState {
  return s === 'ACTIVE' ? 'active' : 'disconnected';
}

/** Driver errors that mean "the database is away for now", not "this request is wrong". */
const UNAVAILABLE_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TlsConnectionError',
]);

/** Database failures as protocol errors: a ProtocolError thrown inside passes unchanged. */
export function dbError(err: unknown): unknown {
  if (err instanceof ProtocolError) return err;
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    // P2028: the transaction hit its deadline (could not start, or ran out of time).
    if (err.code === 'P2028') {
      return new ProtocolError('TIMEOUT', 'database transaction', { cause: err });
    }
    if (err.code === 'P1001' || err.code === 'P1017' || UNAVAILABLE_KINDS.has(adapterKind(err))) {
      return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
    }
  }
  if (err instanceof Prisma.PrismaClientInitializationError) {
    return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
  }
  return err;
}

/** The driver adapter's error kind carried in a Prisma error's meta, if any. */
function adapterKind(err: Prisma.PrismaClientKnownRequestError): string {
  const meta = err.meta as { driverAdapterError?: { cause?: { kind?: unknown } } } | undefined;
  const kind = meta?.driverAdapterError?.cause?.kind;
  return typeof kind === 'string' ? kind : '';
}
