/**
 * The rooms this gateway has members in, and how their broadcasts reach them: one
 * subscription per room (reference counted by its sockets here), fanned out to the local
 * members through the batcher (encoded once; a big room's batched, see batcher.ts).
 *
 * Broadcasts of a change of the room's state carry the room's sequence number (RoomSeq): one
 * that arrives after a gap is held for a moment (broadcasts of two rooms replicas may cross),
 * then, if the gap stays, the room is resynced — its local members get eventRoomState, the room
 * as it is now — as every room is after this gateway was cut off from NATS. A joiner becomes a
 * member once the room here is delivered up to its reply's number: broadcasts its joinR
 * already reflects are not written to it (each member hears of another exactly once).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BusLike, BusSubscription } from '@switchboard/bus';
import {
  Rooms,
  roomBroadcast,
  signalingSubjects,
  type EventFrameMessage,
  type RoomBroadcast,
  type RoomState,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { Batcher, type BatcherOptions } from './batcher.ts';
import type { Attachable } from './router.ts';

interface RoomFanout {
  readonly roomId: string;
  sub: BusSubscription;
  readonly members: Set<string>;
  /**
   * Sockets attached here that are not members yet, with the broadcasts that came meanwhile:
   * their join (or resume) is not answered yet, or it was at a broadcast number (`floor`) the
   * room here has not delivered up to (the reply overtook broadcasts before it). A joinR
   * reflects every number up to its own: only later broadcasts are written to its socket.
   */
  readonly joining: Map<string, Joining>;
  /** The last broadcast number delivered (undefined until the first member's reply told it). */
  seq: number | undefined;
  /** The highest number seen before `seq` was known. */
  seenBeforeSeq: number;
  /** Broadcasts after a gap, waiting for the missing ones or a resync, by number. */
  held: Map<number, RoomBroadcast>;
  gapTimer: NodeJS.Timeout | undefined;
  syncing: boolean;
  /** Told to go again when a sync was asked for during one. */
  again: boolean;
}

interface Joining {
  /** Broadcasts fanned out since it attached, in order. */
  readonly meanwhile: RoomBroadcast[];
  /** Once answered: its connection and its reply's number (what its reply reflects). */
  answered?: { conn: Attachable; floor: number | undefined };
}

/** How long a gap in a room's broadcast numbers may last before the room is resynced. */
const GAP_WAIT_MS = 300;
/** Broadcasts held during a gap at most; beyond, the resync covers them all. */
const MAX_HELD = 512;
const SYNC_BACKOFF_MS = [500, 1000, 2000, 5000];

export interface FanoutsOptions extends Pick<
  BatcherOptions,
  'minMembers' | 'windowMs' | 'metrics'
> {
  bus: BusLike;
  log: Logger;
  /** The connection of a socket attached here. */
  connection: (socketId: string) => Attachable | undefined;
  /** Whether `socketId` is attached here in `roomId` (a reconnect in progress keeps it so). */
  attachedIn: (socketId: string, roomId: string) => boolean;
  /** Aborted when the gateway stops: resyncs end. */
  stopped: AbortSignal;
}

export class Fanouts {
  readonly #bus: BusLike;
  readonly #log: Logger;
  readonly #rooms = new Map<string, RoomFanout>();
  readonly #batcher: Batcher;
  readonly #connection: FanoutsOptions['connection'];
  readonly #attachedIn: FanoutsOptions['attachedIn'];
  readonly #stopped: AbortSignal;

  constructor(opts: FanoutsOptions) {
    this.#bus = opts.bus;
    this.#log = opts.log;
    this.#connection = opts.connection;
    this.#attachedIn = opts.attachedIn;
    this.#stopped = opts.stopped;
    this.#batcher = new Batcher({
      minMembers: opts.minMembers,
      windowMs: opts.windowMs,
      metrics: opts.metrics,
      log: opts.log,
      connection: opts.connection,
    });
  }

  /** Rooms with members here now. */
  get size(): number {
    return this.#rooms.size;
  }

  stop(): void {
    this.#batcher.stop();
  }

  /**
   * Write `roomId`'s queued broadcasts now: before anything else for one of its members (a
   * relay, a call, the room's state…), so that nothing from or about a peer overtakes that
   * peer's eventJoin.
   */
  flush(roomId: string): void {
    this.#batcher.flush(roomId);
  }

  /**
   * `socketId`'s join (or resume) was answered, at the room's broadcast number `roomSeq`:
   * it becomes a member once the room here is delivered up to that number.
   */
  answered(roomId: string, socketId: string, conn: Attachable, roomSeq: number | undefined): void {
    const room = this.#rooms.get(roomId);
    if (room === undefined) return;
    if (room.seq === undefined && roomSeq !== undefined) {
      // Broadcasts that came meanwhile were delivered; the later of the two is where the
      // room's sequence goes on from.
      room.seq = Math.max(roomSeq, room.seenBeforeSeq);
    }
    const joining = room.joining.get(socketId);
    if (joining === undefined) return;
    joining.answered = { conn, floor: roomSeq };
    this.#admit(room);
    if (room.joining.get(socketId) === joining) this.#awaitGap(room);
  }

  /** `socketId` is joining `roomId` here: broadcasts from now on are kept for it. */
  join(roomId: string, socketId: string): void {
    let room = this.#rooms.get(roomId);
    if (room === undefined) {
      const sub = this.#bus.subscribe(
        signalingSubjects.room(this.#bus.prefix, roomId),
        roomBroadcast,
        (msg) => {
          if (msg.roomId !== roomId) {
            this.#log.warn({ roomId, got: msg.roomId }, 'broadcast for another room; dropped');
            return;
          }
          const r = this.#rooms.get(roomId);
          if (r !== undefined) this.#onBroadcast(roomId, r, msg);
        },
      );
      room = {
        roomId,
        sub,
        members: new Set<string>(),
        joining: new Map(),
        seq: undefined,
        seenBeforeSeq: 0,
        held: new Map(),
        gapTimer: undefined,
        syncing: false,
        again: false,
      };
      this.#rooms.set(roomId, room);
    }
    if (room.members.has(socketId) || room.joining.has(socketId)) return;
    room.joining.set(socketId, { meanwhile: [] });
  }

  /**
   * Answered joiners become members once the room here has delivered up to their reply's
   * number, and get what came meanwhile that their reply does not already reflect (held by
   * their connection until that reply is written). Without this a joiner heard again of
   * members its joinR listed: broadcasts sent before its reply but read after it.
   */
  #admit(room: RoomFanout): void {
    for (const [socketId, j] of room.joining) {
      const a = j.answered;
      if (a === undefined) continue;
      if (a.floor !== undefined && (room.seq === undefined || room.seq < a.floor)) continue;
      // The room here may be past numbers this joiner never got (room.seq jumps to the first
      // reply's number, and broadcasts of concurrent joins are published out of order): it
      // waits for them, or for a resync's state.
      if (!covered(j, a.floor, room.seq)) continue;
      room.joining.delete(socketId);
      this.#batcher.memberAdded(room.roomId, socketId);
      room.members.add(socketId);
      for (const msg of j.meanwhile) {
        if (msg.except === socketId) continue;
        if (msg.seq !== undefined && a.floor !== undefined && msg.seq <= a.floor) continue;
        a.conn.deliver(msg.event);
        for (const e of msg.more ?? []) a.conn.deliver(e);
      }
    }
  }

  /** A broadcast of `room`, in order: to its members (batched or not), kept for joiners. */
  #fanOut(room: RoomFanout, msg: RoomBroadcast): void {
    this.#batcher.fanOut(room, msg);
    if (room.joining.size === 0) return;
    for (const j of room.joining.values()) j.meanwhile.push(msg);
    if (msg.seq !== undefined) this.#admit(room);
  }

  /** A room broadcast: in its number's order, after a gap only once resolved (see above). */
  #onBroadcast(roomId: string, room: RoomFanout, msg: RoomBroadcast): void {
    const seq = msg.seq;
    if (seq === undefined) {
      this.#fanOut(room, msg);
      return;
    }
    if (room.seq === undefined) {
      room.seenBeforeSeq = Math.max(room.seenBeforeSeq, seq);
      this.#fanOut(room, msg);
      return;
    }
    if (seq <= room.seq) {
      // Delivered already, or in a resync's state, for the members; a joiner whose reply
      // is older than it may still be without it (it came late): its place is in their order.
      if (room.joining.size > 0) {
        for (const j of room.joining.values()) insertInOrder(j.meanwhile, { ...msg, seq });
        this.#admit(room);
      }
      return;
    }
    if (seq === room.seq + 1 && !room.syncing) {
      room.seq = seq;
      this.#fanOut(room, msg);
      this.#drainHeld(room);
      return;
    }
    if (room.held.size >= MAX_HELD) room.held.clear();
    room.held.set(seq, msg);
    this.#awaitGap(room);
  }

  /**
   * Numbers are missing (broadcasts held after a gap, or a joiner answered at a number not
   * delivered here yet): if they do not come within GAP_WAIT_MS, the room is resynced.
   */
  #awaitGap(room: RoomFanout): void {
    if (room.syncing || room.gapTimer !== undefined) return;
    room.gapTimer = setTimeout(() => {
      room.gapTimer = undefined;
      if (this.#rooms.get(room.roomId) !== room) return;
      if (room.held.size > 0 || answeredWaiting(room)) this.#sync(room.roomId, room);
    }, GAP_WAIT_MS);
  }

  /** Deliver held broadcasts that follow on; past a resync, a gap left is accepted. */
  #drainHeld(room: RoomFanout, afterSync = false): void {
    for (;;) {
      if (room.seq === undefined || room.held.size === 0) break;
      let next = room.held.get(room.seq + 1);
      if (next === undefined) {
        for (const k of room.held.keys()) if (k <= room.seq) room.held.delete(k);
        if (!afterSync || room.held.size === 0) break;
        // Numbers missing after a fresh state were lost after it was read: go on from the
        // next one held rather than resync again (the next gap does).
        const lowest = Math.min(...room.held.keys());
        next = room.held.get(lowest);
        room.seq = lowest - 1;
      }
      if (next === undefined) break;
      room.held.delete(room.seq + 1);
      room.seq += 1;
      this.#fanOut(room, next);
    }
    if (room.held.size === 0 && !answeredWaiting(room) && room.gapTimer !== undefined) {
      clearTimeout(room.gapTimer);
      room.gapTimer = undefined;
    }
  }

  /**
   * Every room with members here is resynced: after this gateway was cut off from NATS, the
   * broadcasts of that time are lost.
   */
  resyncAll(): void {
    for (const [roomId, room] of this.#rooms) this.#sync(roomId, room);
  }

  /** Read the room's state and give it to its members here; retried while it has some. */
  #sync(roomId: string, room: RoomFanout): void {
    if (room.syncing) {
      room.again = true;
      return;
    }
    room.syncing = true;
    if (room.gapTimer !== undefined) {
      clearTimeout(room.gapTimer);
      room.gapTimer = undefined;
    }
    void (async () => {
      const signal = this.#stopped;
      for (let attempt = 0; this.#rooms.get(roomId) === room && !signal.aborted; attempt++) {
        room.again = false;
        try {
          const state = await this.#bus.request(Rooms.roomState, { roomId }, { signal });
          if (this.#rooms.get(roomId) !== room) return;
          room.seq = Math.max(room.seq ?? 0, state.roomSeq);
          // A joiner not yet a member misses the broadcasts the state stands for (held ones up
          // to it are dropped): it gets the state too, when its reply turns out older (a
          // meanwhile entry at or under its reply's number is skipped at admission).
          for (const [socketId, j] of room.joining) {
            j.meanwhile.push({
              roomId,
              seq: Math.max(1, state.roomSeq),
              event: roomStateEvent(state, socketId),
            });
          }
          this.#admit(room);
          // What was queued before the state goes first; the state then replaces it.
          this.#batcher.flush(roomId);
          for (const member of room.members) {
            this.#connection(member)?.deliver(roomStateEvent(state, member));
          }
          this.#log.info({ roomId, roomSeq: state.roomSeq }, 'room resynced');
          if (!askedAgain(room)) break;
          attempt = -1;
        } catch (err) {
          if (isAborted(signal)) return;
          const wait = SYNC_BACKOFF_MS[Math.min(attempt, SYNC_BACKOFF_MS.length - 1)] ?? 5000;
          this.#log.warn({ err, roomId }, `room resync failed; again in ${wait} ms`);
          await sleep(wait, undefined, { signal }).catch(() => undefined);
        }
      }
    })()
      .catch((err: unknown) => {
        this.#log.error({ err, roomId }, 'room resync failed');
      })
      .finally(() => {
        room.syncing = false;
        this.#drainHeld(room, true);
      });
  }

  /** `socketId` is no longer in `roomId` here (unless attached there again meanwhile). */
  leave(roomId: string, socketId: string): void {
    const room = this.#rooms.get(roomId);
    if (room === undefined) return;
    // Another connection may hold the same socketId in this room (a reconnect in progress).
    if (this.#attachedIn(socketId, roomId)) return;
    room.members.delete(socketId);
    room.joining.delete(socketId);
    if (room.members.size === 0 && room.joining.size === 0) {
      room.sub.unsubscribe();
      if (room.gapTimer !== undefined) clearTimeout(room.gapTimer);
      this.#batcher.drop(roomId);
      this.#rooms.delete(roomId);
    }
  }
}

/**
 * Whether joiner `j`, answered at `floor`, has every broadcast after it up to `upTo` among
 * what came meanwhile (or a resync's state at or after `upTo`, which stands for them).
 */
function covered(j: Joining, floor: number | undefined, upTo: number | undefined): boolean {
  if (floor === undefined || upTo === undefined || upTo <= floor) return true;
  const have = new Set<number>();
  for (const m of j.meanwhile) {
    if (m.seq === undefined) continue;
    if (m.event.a === 'eventRoomState' && m.seq >= upTo) return true;
    have.add(m.seq);
  }
  for (let n = floor + 1; n <= upTo; n++) if (!have.has(n)) return false;
  return true;
}

/** Put numbered `msg` among `list` in its number's order, unless that number is there. */
function insertInOrder(list: RoomBroadcast[], msg: RoomBroadcast & { seq: number }): void {
  if (list.some((m) => m.seq === msg.seq && m.event.a !== 'eventRoomState')) return;
  const at = list.findIndex((m) => m.seq !== undefined && m.seq > msg.seq);
  if (at < 0) list.push(msg);
  else list.splice(at, 0, msg);
}

/** Whether a joiner of `room` was answered at a number not delivered here yet. */
function answeredWaiting(room: RoomFanout): boolean {
  for (const j of room.joining.values()) if (j.answered !== undefined) return true;
  return false;
}

/** Functions, so narrowing across awaits cannot fool the checker. */
function askedAgain(room: RoomFanout): boolean {
  return room.again;
}
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** eventRoomState for one member: the others in the room. */
export function roomStateEvent(state: RoomState, socketId: string): EventFrameMessage {
  return {
    a: 'eventRoomState',
    d: {
      roomId: state.roomId,
      roomSize: state.roomSize,
      sessions: state.sessions.filter((m) => m.socketId !== socketId),
      complete: state.complete,
      userMediaConfiguration: state.userMediaConfiguration,
    },
  };
}
