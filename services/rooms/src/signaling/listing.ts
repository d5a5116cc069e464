/**
 * `roomInfo`, one room's members, in pages of at most MEMBER_LIST_MAX_BYTES of JSON (NATS
 * refuses a message over its max_payload, 1 MiB by default), read with keyset pagination on a
 * prepared statement (sql.ts): a page costs the same wherever it starts. (room.live's
 * snapshot of every room is live.ts.)
 */
import {
  MEMBER_LIST_MAX_BYTES,
  type RoomInfo,
  type Rooms,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Deadline, Sql, Statement } from '../db/sql.ts';

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

/** What a reply has besides its members: the bus envelope, the room's fields, `next`. */
const PAGE_BYTES = 1024;
/** Most members a roomInfo page reads (the request's limit at most). */
const ROOM_INFO_ROWS = 5000;

export interface ListingOptions {
  /** ROOM_DEFAULT_CAPACITY: the capacity of a room without its own. */
  defaultCapacity: number;
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
}
