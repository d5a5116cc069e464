/**
 * room.live's ticks (Rooms.publishLive): every room with members, read in one snapshot of the
 * database and published on `<p>.room.live`, one message per room — or a room too big for one
 * message (MEMBER_LIST_MAX_BYTES) in consecutive parts, `part` 1, 2, 3…, `more` on all but
 * the last (see RoomEvents['room.live']).
 *
 * The events service's leader decides when (its interval and lease); the rooms service, which
 * owns the membership, reads and publishes it in one pass. Before, the leader read it in pages
 * of 2,000 rooms over NATS, parsed and validated them, and built each message again: a tick of
 * 100,000 rooms cost some 1.5 s of CPU across the two services and took 1.6–2.0 s (see the
 * docs/events.md).
 *
 * PostgreSQL does the heavy part: it walks the members in (room_id, socket_id) order (the
 * index sessions_room_id_socket_id), writes each member's JSON and aggregates each room's
 * into one JSON array; a server-side cursor streams those rows (one per room) in batches, each
 * FETCH asked for before the previous batch is published. Here each row becomes its message's
 * text — a room whose members pass the budget is cut into parts at member boundaries — and a
 * batch goes out through Bus.publishMany (no headers: a header block per message made the
 * publishing half as slow again, measured alone) and is flushed to the server before the next
 * is taken on, so memory stays at about two batches whatever the number of rooms.
 */
import type { Bus } from '@switchboard/bus';
import {
  MEMBER_LIST_MAX_BYTES,
  roomEventSubject,
  type Rooms,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Deadline, Sql } from '../db/sql.ts';

/**
 * One row per room with members: its whole message — `{"ts":$1,"roomId":…,"roomSize":…,
 * "sessions":[…]}`, members in socketId order. The aggregate keeps the order of its input,
 * the ordered subquery's (an ORDER BY in string_agg would sort each room again: three times
 * the statement's time for 100,000 rooms); a cursor's plan is never parallel, which alone
 * could mix it. Members' JSON is written by hand: `socketId` is 32 hex characters (SocketId),
 * `userId` any text, escaped by to_json; room ids need no escaping (RoomId).
 */
const LIVE_TICK = `SELECT '{"ts":' || $1::bigint || ',"roomId":"' || room_id || '","roomSize":'
    || count(*) || ',"sessions":['
    || string_agg('{"socketId":"' || socket_id || '","userId":' || to_json(user_id)::text || '}', ',')
    || ']}'
  FROM (SELECT room_id, socket_id, user_id FROM sessions ORDER BY room_id, socket_id) s
  GROUP BY room_id
  ORDER BY room_id`;

/** Where a message's members begin: the first `"sessions":[` (a room id has no quote). */
const SESSIONS_KEY = ',"sessions":';
/**
 * Where one member's JSON ends and the next begins in a room's array. It cannot occur inside
 * a userId: JSON escapes every `"` in a string.
 */
const MEMBER_BOUNDARY = '},{"socketId":"';

/**
 * What a message has besides its members: `{"ts":…,"roomId":…,"roomSize":…,"sessions":,
 * "part":…,"more":false}` with a 128-character room id (RoomId) is under 250 bytes; one
 * member is at most some 830 (a userId of 128 characters that JSON escapes as \uXXXX each).
 * A part's members take at most the budget less this.
 */
const MESSAGE_OVERHEAD_BYTES = 2048;
/** Rows (rooms) a FETCH takes at most: 2,000 rooms of one member are some 300 KB. */
const BATCH_ROWS = 2000;
/** What a batch should weigh at most: fewer rows are fetched when messages are big. */
const BATCH_BYTES = 4 * 1024 * 1024;

type PublishLive = typeof Rooms.publishLive;

export class LiveTicks {
  readonly #sql: Sql;
  readonly #bus: Bus;

  constructor(sql: Sql, bus: Bus) {
    this.#sql = sql;
    this.#bus = bus;
  }

  /** See Rooms.publishLive. */
  async publish(req: RpcRequest<PublishLive>, d: Deadline): Promise<RpcReply<PublishLive>> {
    // Half the NATS server's limit when it is lower than the default's: the publisher's own
    // connection says what its messages may weigh.
    const maxBytes = Math.min(
      req.maxBytes ?? MEMBER_LIST_MAX_BYTES,
      MEMBER_LIST_MAX_BYTES,
      Math.floor((this.#bus.connection?.info?.max_payload ?? Infinity) / 2),
    );
    const partBytes = maxBytes - MESSAGE_OVERHEAD_BYTES;
    const subject = roomEventSubject(this.#bus.prefix, 'room.live');
    let rooms = 0;
    let messages = 0;
    /** Characters per room in the last batch: how many rows the next FETCH takes. */
    let perRow = 0;

    /** The room's messages: its row's, or its parts (`part`, `more`) when it is too big. */
    const messagesOf = (m: string, out: string[]): void => {
      // UTF-8 takes at most 3 bytes for a UTF-16 unit: most rooms are counted at a glance.
      if (m.length * 3 <= maxBytes || Buffer.byteLength(m) <= maxBytes) {
        out.push(m);
        return;
      }
      const at = m.indexOf(SESSIONS_KEY) + SESSIONS_KEY.length;
      const head = m.slice(0, at);
      const parts = splitMembers(m.slice(at, -1), partBytes);
      for (const [i, members] of parts.entries()) {
        const more = i < parts.length - 1;
        out.push(`${head}${members},"part":${String(i + 1)},"more":${String(more)}}`);
      }
    };
    const batchRows = (): number =>
      perRow === 0
        ? BATCH_ROWS
        : Math.max(1, Math.min(BATCH_ROWS, Math.floor(BATCH_BYTES / perRow)));

    for await (const rows of this.#sql.cursor(LIVE_TICK, [req.ts], d, batchRows)) {
      const out: string[] = [];
      let chars = 0;
      for (const [m] of rows) {
        if (typeof m !== 'string') throw new Error('publishLive: a row without its message');
        messagesOf(m, out);
        chars += m.length;
      }
      rooms += rows.length;
      perRow = Math.max(1, Math.ceil(chars / rows.length));
      this.#bus.publishMany(subject, out);
      messages += out.length;
      // On the server before the next batch is taken on: memory stays bounded.
      await this.#bus.flush(d.signal);
    }
    return { rooms, messages };
  }
}

/**
 * A room's members' JSON array cut into arrays of at most `maxBytes` (UTF-8) each, at member
 * boundaries, in order. A member longer than `maxBytes` alone (impossible with the protocol's
 * limits and the budgets allowed) would get an array of its own.
 */
export function splitMembers(array: string, maxBytes: number): string[] {
  const parts: string[] = [];
  const inner = array.slice(1, -1);
  let start = 0;
  // A part's bytes: its brackets and its members, each with a comma but the last.
  let bytes = 1;
  let at = 0;
  while (at < inner.length) {
    const next = inner.indexOf(MEMBER_BOUNDARY, at);
    // The member from `at` to its closing brace (or the end).
    const end = next === -1 ? inner.length : next + 1;
    const n = Buffer.byteLength(inner.slice(at, end)) + 1;
    if (bytes > 1 && bytes + n > maxBytes) {
      parts.push(`[${inner.slice(start, at - 1)}]`);
      start = at;
      bytes = 1;
    }
    bytes += n;
    at = next === -1 ? inner.length : next + 2;
  }
  parts.push(`[${inner.slice(start)}]`);
  return parts;
}
