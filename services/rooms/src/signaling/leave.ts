/**
 * How sessions end: a client leaves (its connection closed with `leave`), the server API
 * removes members or deletes the room, or a reconnect window passes (the sweeper's
 * `expire`); and how rooms end, when their empty timeout has passed. Sessions end through
 * sb_leave and sb_remove (see the SQL functions of the migration `signaling_functions`),
 * which hold the room's row lock (the lock order: join.ts) and report each session that
 * ended with the room's size afterwards; the rooms are then told (Announcements).
 */
import type { LeaveReason, Rooms, RpcRequest } from '@switchboard/protocol';
import { NOW, type Db, type Transaction, type Tx } from '../db/client.ts';
import { Prisma } from '../generated/prisma/client.ts';
import type { Deadline, Sql, Statement } from '../db/sql.ts';
import { recordEvent } from '../events/outbox.ts';
import type { Announcements } from './announcements.ts';
import type { MembershipMetrics } from './metrics.ts';

const EXPIRE_BATCH = 200;

const REMOVE: Statement = {
  name: 'sb_remove',
  text: `SELECT $1::text AS "roomId", ${leftColumns()}
    FROM sb_remove($1, $2, NULL, $3, $4, $5, $6)`,
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

/** A session that ended: who, and the room's size afterwards. */
export interface Left {
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

export interface LeavesOptions {
  /** RECONNECT_WINDOW_MS: how long a session without a connection is kept. */
  reconnectWindowMs: number;
  announce: Announcements;
  metrics: Pick<MembershipMetrics, 'ended'>;
  /** Told after a statement that may have written room events (the outbox relay). */
  onEvents: () => void;
  /** Membership.transaction. */
  transaction: Transaction;
}

export class Leaves {
  readonly #db: Db;
  readonly #sql: Sql;
  readonly #opts: LeavesOptions;

  constructor(db: Db, sql: Sql, opts: LeavesOptions) {
    this.#db = db;
    this.#sql = sql;
    this.#opts = opts;
  }

  /**
   * The session's connection closed with `leave`: the session ends now (peers get
   * eventLeave), unless the connection is no longer the session's.
   */
  async leave(
    req: RpcRequest<typeof Rooms.disconnect>,
    d: Deadline,
  ): Promise<{ applied: boolean }> {
    // One statement (see sb_leave).
    const left = await this.#sql.query<Left>(LEAVE, [req.socketId, req.connectionId], d);
    this.#opts.onEvents();
    this.#opts.metrics.ended.inc({ reason: 'left' }, left.length);
    this.#opts.announce.left(left);
    return { applied: left.length > 0 };
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
        this.#opts.announce.detach(l, 'expired');
      }
      this.#opts.metrics.ended.inc({ reason: 'expired' }, left.length);
      this.#opts.announce.left(left);
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
    for (const l of left) this.#opts.announce.detach(l, reason, message);
    this.#opts.metrics.ended.inc({ reason }, left.length);
    this.#opts.announce.left(left);
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
      const done = await this.#opts.transaction(d, async (tx) => {
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
    this.#opts.onEvents();
    return left;
  }

  /** Delete a locked room's row and record room.closed. */
  async #close(tx: Tx, roomId: string): Promise<void> {
    await tx.$executeRaw`DELETE FROM rooms WHERE id = ${roomId}`;
    await recordEvent(tx, 'room.closed', { roomId });
  }
}
