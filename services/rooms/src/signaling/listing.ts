/**
 * The listings that grow with a room, in pages of at most MEMBER_LIST_MAX_BYTES of JSON (NATS
 * refuses a message over its max_payload, 1 MiB by default): `liveRooms`, every room with
 * members for the events service's room.live, and `roomInfo`, one room's members. Both read
 * with keyset pagination on prepared statements (sql.ts): a page costs the same wherever it
 * starts, and a room.live tick of 100,000 rooms is some 100 pages.
 */
import {
  MEMBER_LIST_MAX_BYTES,
  ProtocolError,
  type RoomInfo,
  type Rooms,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Deadline, Sql, Statement } from '../db/sql.ts';

type LiveRooms = RpcReply<typeof Rooms.liveRooms>;
type LiveRoom = LiveRooms['rooms'][number];
interface LiveRow {
  roomId: string;
  socketId: string;
  userId: string;
}

/**
 * liveRooms' rows: members in (room_id, socket_id) order — the index sessions_room_id_socket_id
 * — up to $rooms rooms ($rooms - 1 whole, dense_rank's run condition stops the scan after it)
 * and $rows rows. The ordered subquery feeds the window, whose output keeps that order (with
 * a `ROWS` frame it reads no peer ahead); an ORDER BY over the result instead would sort each
 * room's members again and read a whole room for every page of it.
 */
function liveRows(where: string, rooms: string, rows: string): string {
  return `SELECT room_id AS "roomId", socket_id AS "socketId", user_id AS "userId" FROM (
      SELECT room_id, socket_id, user_id,
             dense_rank() OVER (ORDER BY room_id ROWS CURRENT ROW) AS n
      FROM (SELECT room_id, socket_id, user_id FROM sessions WHERE ${where}
            ORDER BY room_id, socket_id) ordered) s
    WHERE n <= ${rooms} LIMIT ${rows}`;
}
/** From the room after $1 (every room after '', as room ids are never empty). */
const LIVE_AFTER_ROOM: Statement = {
  name: 'sb_live_after_room',
  text: liveRows('room_id > $1', '$2', '$3'),
};
/** Room $1 continued after member $2, then the rooms after it. */
const LIVE_IN_ROOM: Statement = {
  name: 'sb_live_in_room',
  text: liveRows('(room_id, socket_id) > ($1, $2)', '$3', '$4'),
};
/** The sizes of rooms a page holds part of. */
const ROOM_SIZES: Statement = {
  name: 'sb_room_sizes',
  text: `SELECT room_id AS "roomId", count(*)::int AS n FROM sessions
    WHERE room_id = ANY($1::text[]) GROUP BY room_id`,
};
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

/** Bytes of `s` as JSON. */
function jsonBytes(s: string): number {
  return Buffer.byteLength(JSON.stringify(s));
}

/**
 * A room's JSON without members and its id, `{"roomId":,"roomSize":,"sessions":[]},` (48),
 * roomSize's digits (10 at most) and room.live's own fields, `"ts":…,"part":…,"more":false,`
 * (46 at most); rounded up.
 */
const LIVE_ROOM_BYTES = 110;
/** A member's JSON without its userId: `{"socketId":"<32 hex>","userId":},`. */
const LIVE_MEMBER_BYTES = 58;
/** The smallest member (a one-character userId): how many rows a page can need at most. */
const LIVE_MIN_MEMBER_BYTES = LIVE_MEMBER_BYTES + 3;
/** What a reply has besides its rooms: the bus envelope, `next`, a room continued empty. */
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

  /** See Rooms.liveRooms: a page of the rooms with members, ending at a room or byte bound. */
  async liveRooms(req: RpcRequest<typeof Rooms.liveRooms>, d: Deadline): Promise<LiveRooms> {
    if (req.afterSocketId !== undefined && req.after === undefined)
      throw new ProtocolError('JSON_FIELD_INVALID', 'afterSocketId without after');
    const maxBytes = Math.min(req.maxBytes ?? MEMBER_LIST_MAX_BYTES, MEMBER_LIST_MAX_BYTES);
    const maxRows = Math.ceil(maxBytes / LIVE_MIN_MEMBER_BYTES);
    const continued = req.afterSocketId === undefined ? undefined : req.after;
    // One room and one row more than a page takes: whether (and where) the listing goes on.
    const rows =
      continued === undefined
        ? await this.#sql.query<LiveRow>(
            LIVE_AFTER_ROOM,
            [req.after ?? '', req.limit + 1, maxRows + 1],
            d,
          )
        : await this.#sql.query<LiveRow>(
            LIVE_IN_ROOM,
            [continued, req.afterSocketId, req.limit + 1, maxRows + 1],
            d,
          );

    const rooms: LiveRoom[] = [];
    const seen = new Set<string>();
    let room: LiveRoom | undefined;
    let bytes = PAGE_BYTES;
    let next: LiveRooms['next'];
    for (const [i, r] of rows.entries()) {
      const member = LIVE_MEMBER_BYTES + jsonBytes(r.userId);
      if (room?.roomId === r.roomId) {
        if (i === maxRows || bytes + member > maxBytes) {
          // A room is cut only when it has the page to itself (it does not fit one message):
          // any other begins the next page, whole if it fits.
          const before = rooms.length > 1 ? rooms[rooms.length - 2] : undefined;
          if (before !== undefined) {
            rooms.pop();
            next = { after: before.roomId };
          } else {
            next = { after: room.roomId, afterSocketId: room.sessions.at(-1)?.socketId };
          }
          break;
        }
      } else {
        // The statement relies on the window keeping its input's order: a room's rows together.
        if (seen.has(r.roomId)) throw new Error(`liveRooms: the rows of ${r.roomId} are apart`);
        seen.add(r.roomId);
        const add = LIVE_ROOM_BYTES + jsonBytes(r.roomId) + member;
        if (
          room !== undefined &&
          (i === maxRows || rooms.length === req.limit || bytes + add > maxBytes)
        ) {
          next = { after: room.roomId };
          break;
        }
        room = { roomId: r.roomId, roomSize: 0, sessions: [] };
        rooms.push(room);
        bytes += add - member;
      }
      room.sessions.push({ socketId: r.socketId, userId: r.userId });
      bytes += member;
    }
    // A room the previous page ended inside whose other members all left since: its (empty)
    // last part, so that a reader of room.live learns it ended.
    if (continued !== undefined && rooms[0]?.roomId !== continued)
      rooms.unshift({ roomId: continued, roomSize: 0, sessions: [] });

    // A room whole in this page is as big as its members here; one begun on an earlier page or
    // going on in the next is counted.
    const partial = new Set<string>();
    if (continued !== undefined) partial.add(continued);
    if (next?.afterSocketId !== undefined) partial.add(next.after);
    const sizes = new Map<string, number>();
    if (partial.size > 0) {
      const counted = await this.#sql.query<{ roomId: string; n: number }>(
        ROOM_SIZES,
        [[...partial]],
        d,
      );
      for (const c of counted) sizes.set(c.roomId, c.n);
    }
    for (const r of rooms)
      r.roomSize = partial.has(r.roomId) ? (sizes.get(r.roomId) ?? 0) : r.sessions.length;
    return next === undefined ? { rooms } : { rooms, next };
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
