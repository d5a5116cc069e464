/**
 * What is read of one room, each on a prepared statement (sql.ts), without a lock:
 * - `roomInfo`, its members, in pages of at most MEMBER_LIST_MAX_BYTES of JSON (NATS
 *   refuses a message over its max_payload, 1 MiB by default), read with keyset pagination:
 *   a page costs the same wherever it starts;
 * - for its members: `roomState`, the room as they should see it now (one statement: one
 *   snapshot), and `members`, the other visible members a page at a time.
 * (room.live's snapshot of every room is live.ts.)
 */
import {
  MEMBER_LIST_MAX_BYTES,
  type RoomInfo,
  type RoomState,
  type Rooms,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Deadline, Sql, Statement } from '../db/sql.ts';
import type { UserMediaLadder } from './ladder.ts';

/**
 * roomInfo: the room (capacity, media node, size) and up to $4 of its members after the
 * cursor ($2 join time in epoch ms, $3 socketId), in join order, in one statement so that
 * size and members are of one snapshot. One row when the page has no member.
 */
const ROOM_INFO: Statement = {
  name: 'sb_room_info',
  text: `SELECT r.capacity, r.media_node_id AS "mediaNodeId",
      (SELECT count(*)::int FROM sessions WHERE room_id = $1) AS "roomSize",
      m.socket_id AS "socketId", m.user_id AS "userId", m.platform,
      lower(m.state::text) AS state, m.gateway_id AS "gatewayId", m.joined
    FROM (VALUES (1)) one
    LEFT JOIN rooms r ON r.id = $1
    LEFT JOIN LATERAL (
      SELECT socket_id, user_id, platform, state, gateway_id, joined_at,
             (extract(epoch FROM joined_at) * 1000)::bigint AS joined
      FROM sessions
      WHERE room_id = $1 AND ($2::bigint IS NULL
        OR (joined_at, socket_id) > ('epoch'::timestamp + $2::bigint * interval '1 ms', $3::text))
      ORDER BY joined_at, socket_id LIMIT $4) m ON TRUE
    ORDER BY m.joined_at, m.socket_id`,
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

/** What a reply has besides its members: the bus envelope, the room's fields, `next`. */
const PAGE_BYTES = 1024;
/** Most members a roomInfo page reads (the request's limit at most). */
const ROOM_INFO_ROWS = 5000;

export interface ListingOptions {
  /** ROOM_DEFAULT_CAPACITY: the capacity of a room without its own. */
  defaultCapacity: number;
  /** The media configuration a RoomState carries, by the room's size. */
  ladder: UserMediaLadder;
}

export class Listing {
  readonly #sql: Sql;
  readonly #opts: ListingOptions;

  constructor(sql: Sql, opts: ListingOptions) {
    this.#sql = sql;
    this.#opts = opts;
  }

  /** See Rooms.roomInfo: the room and its members (a page of them when they do not fit). */
  async roomInfo(req: RpcRequest<typeof Rooms.roomInfo>, d: Deadline): Promise<RoomInfo> {
    const [joinedMs, afterSocketId] =
      req.after === undefined ? [null, null] : (req.after.split('.') as [string, string]);
    const limit = Math.min(req.limit ?? ROOM_INFO_ROWS, ROOM_INFO_ROWS);
    const rows = await this.#sql.query<{
      capacity: number | null;
      mediaNodeId: string | null;
      roomSize: number;
      socketId: string | null;
      userId: string;
      platform: string;
      state: 'active' | 'disconnected';
      gatewayId: string;
      joined: string;
    }>(ROOM_INFO, [req.roomId, joinedMs, afterSocketId, limit + 1], d);
    const head = rows[0];
    const info: RoomInfo = {
      roomId: req.roomId,
      capacity: head?.capacity ?? this.#opts.defaultCapacity,
      roomSize: head?.roomSize ?? 0,
      sessions: [],
      mediaNodeId: head?.mediaNodeId ?? null,
    };
    let bytes = PAGE_BYTES + Buffer.byteLength(JSON.stringify(info));
    let last: (typeof rows)[number] | undefined;
    for (const [i, r] of rows.entries()) {
      if (r.socketId === null) break; // the page has no member
      const member = {
        socketId: r.socketId,
        userId: r.userId,
        platform: r.platform,
        state: r.state,
        gatewayId: r.gatewayId,
      };
      bytes += Buffer.byteLength(JSON.stringify(member)) + 1;
      if (i === limit || bytes > MEMBER_LIST_MAX_BYTES) {
        if (last !== undefined) info.next = `${last.joined}.${String(last.socketId)}`;
        break;
      }
      info.sessions.push(member);
      last = r;
    }
    return info;
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
      userMediaConfiguration: this.#opts.ladder.configuration(Math.max(1, row.roomSize)),
    };
  }
}
