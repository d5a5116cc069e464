/**
 * Admitting a session into its room, creating the room on its first join: one statement,
 * sb_join (see the SQL functions of the migration `signaling_functions`), the hot path of a
 * join.
 *
 * The lock order of membership. Every change that alters a room's size runs in a
 * transaction holding the room's row lock (`SELECT … FOR UPDATE`), so concurrent joins never
 * admit more than the capacity and a leave's reported size is exact. Lock order is always
 * room, then session, so no two transactions can deadlock on each other: sb_join takes the
 * room's row with its upsert before it inserts the session; sb_remove and sb_leave
 * (leave.ts), a reconnect (reconnect.ts) and the server API's changes to a member
 * (administration.ts) lock the room's row before any session's.
 */
import {
  MEMBERS_PAGE_MAX,
  type RoomsJoinReply,
  type RoomsJoinRequest,
} from '@switchboard/protocol';
import type { Deadline, Sql, Statement } from '../db/sql.ts';
import type { EventPayload } from '../events/outbox.ts';
import type { Announcements } from './announcements.ts';
import type { UserMediaLadder } from './ladder.ts';

/** See the SQL functions of the migration `signaling_functions`. */
const JOIN: Statement = {
  name: 'sb_join',
  text: `SELECT room_size AS "roomSize", room_seq::float8 AS "roomSeq", sessions,
    sessions_next AS "sessionsNext" FROM sb_join(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22, $23, $24)`,
};

export interface JoinsOptions {
  sql: Sql;
  /** ROOM_DEFAULT_CAPACITY: the capacity of a room without its own. */
  defaultCapacity: number;
  /** Most sessions of one user in one room (ROOM_MAX_SESSIONS_PER_USER). */
  maxSessionsPerUser: number;
  ladder: UserMediaLadder;
  announce: Announcements;
  /** Told after a statement that may have written room events (the outbox relay). */
  onEvents: () => void;
}

export class Joins {
  readonly #opts: JoinsOptions;

  constructor(opts: JoinsOptions) {
    this.#opts = opts;
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
    const rows = await this.#opts.sql.query<{
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
    this.#opts.onEvents();
    const row = rows[0];
    if (row === undefined) throw new Error('sb_join returned no row');
    const size = row.roomSize;
    this.#opts.announce.joined(req, size, row.roomSeq);
    return {
      socketId: req.socketId,
      roomSize: size,
      userMediaConfiguration: this.#opts.ladder.configuration(size),
      sessions: row.sessions,
      ...(row.sessionsNext === null ? {} : { sessionsNext: row.sessionsNext }),
      roomSeq: row.roomSeq,
    };
  }
}
