/**
 * How a room's broadcasts, once in order (router.ts), reach its members here. Each is encoded
 * once, whatever the number of members. A big room's are also batched: in a room of n members
 * every join goes to every member, n² frames to fill it, each a ws send of its own. So a room
 * with WS_BATCH_MIN_MEMBERS members or more here has its broadcasts queued, and written
 * WS_BATCH_MS after the first one (or once they hold EVENT_BATCH_MAX_ITEMS events): one
 * `eventBatch` frame to each member whose client reads it (`batchEvents`), the single event
 * frames to the others.
 *
 * The order rule: nobody hears from or about a peer before that peer's queued broadcasts. The
 * router calls `flush(roomId)` before anything else reaches a member of the room (a relay,
 * a server call, the room's state…); a batch's frames are written to each member in order.
 */
import {
  EVENT_BATCH_MAX_ITEMS,
  type EventFrameMessage,
  type RoomBroadcast,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { encodeEvent, type EncodedFrame } from './frames.ts';
import type { SignalingMetrics } from './metrics.ts';
import type { Attachable } from './router.ts';

/** A room as the batcher sees it: the router's live set of its members here. */
export interface BatchRoom {
  readonly roomId: string;
  readonly members: ReadonlySet<string>;
}

interface Queued {
  event: EventFrameMessage;
  /** Its broadcast's `except`: the member that does not get it. */
  except: string | undefined;
}

interface Pending {
  room: BatchRoom;
  events: Queued[];
  /** Members some event is not for: their frames are their own. */
  excepted: Set<string>;
  /** Members who came after the batch began, by the first event they get (the others: 0). */
  from: Map<string, number>;
  timer: NodeJS.Timeout;
}

/** Where one event's JSON is in a flush's body, and the single frame made of it. */
interface Span {
  start: number;
  end: number;
  except: string | undefined;
  mediaReset: boolean;
  single: EncodedFrame | undefined;
}

export interface BatcherOptions {
  /** WS_BATCH_MIN_MEMBERS: 0 never batches. */
  minMembers: number;
  /** WS_BATCH_MS. */
  windowMs: number;
  metrics: Pick<SignalingMetrics, 'batches' | 'batchedEvents'>;
  log: Logger;
  /** The connection holding a member's socket here, if any. */
  connection: (socketId: string) => Attachable | undefined;
}

const HEAD = Buffer.from('{"a":"eventBatch","d":[');
const COMMA = Buffer.from(',');
const TAIL = Buffer.from(']}');

export class Batcher {
  readonly #opts: BatcherOptions;
  readonly #pending = new Map<string, Pending>();
  #stopped = false;

  constructor(opts: BatcherOptions) {
    this.#opts = opts;
  }

  /** A broadcast of `room`, in its order: written to the members now, or queued. */
  fanOut(room: BatchRoom, msg: RoomBroadcast): void {
    const events = msg.more === undefined ? [msg.event] : [msg.event, ...msg.more];
    let p = this.#pending.get(room.roomId);
    if (p !== undefined && p.events.length + events.length > EVENT_BATCH_MAX_ITEMS) {
      this.flush(room.roomId);
      p = undefined;
    }
    if (p === undefined) {
      const min = this.#opts.minMembers;
      if (this.#stopped || min === 0 || room.members.size < min) {
        this.#now(room, events, msg.except);
        return;
      }
      p = this.#begin(room);
    }
    // Once a batch is pending, whatever follows joins it (even if the room shrank): order.
    for (const event of events) p.events.push({ event, except: msg.except });
    if (msg.except !== undefined) p.excepted.add(msg.except);
    if (p.events.length >= EVENT_BATCH_MAX_ITEMS) this.flush(room.roomId);
  }

  /**
   * `socketId` became a member of `roomId` here: it gets the events queued from now on only,
   * as it would have without batching (the room before it came is in its joinR, or in the
   * eventRoomState that follows a resume).
   */
  memberAdded(roomId: string, socketId: string): void {
    const p = this.#pending.get(roomId);
    if (p !== undefined) p.from.set(socketId, p.events.length);
  }

  /** Write `roomId`'s queued broadcasts now: before anything else reaches its members. */
  flush(roomId: string): void {
    const p = this.#pending.get(roomId);
    if (p === undefined) return;
    this.#pending.delete(roomId);
    clearTimeout(p.timer);
    // Every event's JSON once, one after the other in one buffer: a single frame is a view of
    // it, a batch of all of them a copy with a head and a tail, a member's own batch a copy
    // of its parts.
    const texts: string[] = [];
    const spans: Span[] = [];
    let at = 0;
    for (const { event, except } of p.events) {
      const text = JSON.stringify(event);
      const end = at + Buffer.byteLength(text);
      texts.push(text);
      spans.push({
        start: at,
        end,
        except,
        mediaReset: event.a === 'eventMediaReset',
        single: undefined,
      });
      at = end + COMMA.length;
    }
    const body = Buffer.from(texts.join(','), 'utf8');
    let all: EncodedFrame | undefined;
    let batches = 0;
    let carried = 0;
    for (const member of p.room.members) {
      const conn = this.#opts.connection(member);
      if (conn === undefined) continue;
      const first = p.from.get(member) ?? 0;
      // Most members get every event; one that came meanwhile, or that some are not for, fewer.
      const mine =
        first === 0 && !p.excepted.has(member)
          ? spans
          : spans.filter((s, i) => i >= first && s.except !== member);
      if (mine.length === 0) continue;
      if (conn.batchEvents) {
        conn.deliverEncoded(mine === spans ? (all ??= batchOf(body, spans)) : batchOf(body, mine));
        batches += 1;
        carried += mine.length;
      } else {
        for (const s of mine) {
          s.single ??= { bytes: body.subarray(s.start, s.end), mediaReset: s.mediaReset };
          conn.deliverEncoded(s.single);
        }
      }
    }
    if (batches > 0) {
      this.#opts.metrics.batches.inc(batches);
      this.#opts.metrics.batchedEvents.inc(carried);
    }
  }

  /** The room has no members here any more: what it had queued goes to nobody. */
  drop(roomId: string): void {
    const p = this.#pending.get(roomId);
    if (p === undefined) return;
    this.#pending.delete(roomId);
    clearTimeout(p.timer);
  }

  /**
   * The gateway is stopping and its sockets are closed: queued broadcasts are dropped (a
   * client that resumes elsewhere gets the room's state), later ones go at once, no timer.
   */
  stop(): void {
    this.#stopped = true;
    for (const roomId of [...this.#pending.keys()]) this.drop(roomId);
  }

  #begin(room: BatchRoom): Pending {
    const { roomId } = room;
    const p: Pending = {
      room,
      events: [],
      excepted: new Set(),
      from: new Map(),
      timer: setTimeout(() => {
        try {
          this.flush(roomId);
        } catch (err) {
          this.#opts.log.error({ err, roomId }, 'writing a batch of broadcasts failed');
        }
      }, this.#opts.windowMs),
    };
    this.#pending.set(roomId, p);
    return p;
  }

  /** A small room's broadcast: its frames encoded once, written to each member at once. */
  #now(room: BatchRoom, events: EventFrameMessage[], except: string | undefined): void {
    let frames: EncodedFrame[] | undefined;
    for (const member of room.members) {
      if (member === except) continue;
      const conn = this.#opts.connection(member);
      if (conn === undefined) continue;
      frames ??= events.map(encodeEvent);
      for (const f of frames) conn.deliverEncoded(f);
    }
  }
}

/** One eventBatch frame of `spans` of `body`, in order: adjacent ones copied as one run. */
function batchOf(body: Buffer, spans: readonly Span[]): EncodedFrame {
  const parts: Buffer[] = [HEAD];
  let run: { start: number; end: number } | undefined;
  for (const s of spans) {
    if (run !== undefined && s.start === run.end + COMMA.length) {
      run.end = s.end;
      continue;
    }
    if (run !== undefined) parts.push(body.subarray(run.start, run.end), COMMA);
    run = { start: s.start, end: s.end };
  }
  if (run !== undefined) parts.push(body.subarray(run.start, run.end));
  parts.push(TAIL);
  return { bytes: Buffer.concat(parts), mediaReset: spans.some((s) => s.mediaReset) };
}
