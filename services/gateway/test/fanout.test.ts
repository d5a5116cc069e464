/**
 * The gateway's room fan-out (Fanouts) against a fake bus (only `subscribe` and the room-state
 * request are used; the broadcasts are handed to its handler by the test) and fake
 * connections that record what is written to them: broadcasts of concurrent joins arrive out
 * of number order, and every member must still hear of every other exactly once, in its
 * joinR, in an eventJoin or in a resync's eventRoomState. The process-level check of the same
 * is test/signaling/members.test.ts ("joins at once").
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { BusLike } from '@switchboard/bus';
import type { EventFrameMessage, RoomBroadcast } from '@switchboard/protocol';
import { Counter } from '@switchboard/service';
import { Fanouts } from '../src/signaling/fanout.ts';
import type { EncodedFrame } from '../src/signaling/frames.ts';
import type { Attachable } from '../src/signaling/router.ts';

const ROOM = 'room-1';

/** A connection that keeps the socketIds of the members it heard of, and every event. */
class FakeConn {
  readonly connectionId: string;
  readonly batchEvents = false;
  readonly events: EventFrameMessage[] = [];

  constructor(id: string) {
    this.connectionId = id;
  }

  deliver(event: EventFrameMessage): void {
    this.events.push(event);
  }

  /** A frame encoded once for many members: an event (or an eventBatch of them). */
  deliverEncoded(frame: EncodedFrame): void {
    const f = JSON.parse(frame.bytes.toString('utf8')) as { a: string; d: unknown };
    if (f.a === 'eventBatch') this.events.push(...(f.d as EventFrameMessage[]));
    else this.events.push(f as EventFrameMessage);
  }

  close(): void {
    // not used
  }

  /** The eventJoins' socketIds, in order. */
  joins(): string[] {
    return this.events
      .filter((e) => e.a === 'eventJoin')
      .map((e) => (e.d as { socketId: string }).socketId);
  }
}

function setup(roomSeq = 0): {
  fanouts: Fanouts;
  conns: Map<string, FakeConn>;
  broadcast: (seq: number, socketId: string) => void;
  stateAsked: () => number;
} {
  let handler: ((msg: RoomBroadcast) => void) | undefined;
  let asked = 0;
  const bus = {
    prefix: 't',
    subscribe: (_subject: string, _schema: unknown, h: (msg: RoomBroadcast) => void) => {
      handler = h;
      return { unsubscribe: () => undefined };
    },
    request: async () => {
      asked++;
      return await Promise.resolve({ roomId: ROOM, roomSize: 0, roomSeq, sessions: [] });
    },
  } as unknown as BusLike;
  const conns = new Map<string, FakeConn>();
  const fanouts = new Fanouts({
    bus,
    log: pino({ level: 'silent' }),
    connection: (socketId) => conns.get(socketId) as unknown as Attachable | undefined,
    attachedIn: () => false,
    stopped: new AbortController().signal,
    minMembers: 1000,
    windowMs: 10,
    metrics: {
      batches: new Counter({ name: 'fanout_test_batches', help: 'batches', registers: [] }),
      batchedEvents: new Counter({ name: 'fanout_test_events', help: 'events', registers: [] }),
    },
  });
  const broadcast = (seq: number, socketId: string): void => {
    const msg: RoomBroadcast = {
      roomId: ROOM,
      seq,
      except: socketId,
      event: { a: 'eventJoin', d: { roomId: ROOM, socketId, userId: socketId, roomSize: seq } },
    };
    handler?.(msg);
  };
  return { fanouts, conns, broadcast, stateAsked: () => asked };
}

/** `socketId` attaches, and is answered at broadcast number `floor`. */
function joinAndAnswer(s: ReturnType<typeof setup>, socketId: string, floor: number): FakeConn {
  const conn = new FakeConn(socketId);
  s.conns.set(socketId, conn);
  s.fanouts.join(ROOM, socketId);
  s.fanouts.answered(ROOM, socketId, conn as unknown as Attachable, floor);
  return conn;
}

describe('room fan-out with broadcasts out of order', () => {
  it('a joiner whose reply is older than the room here waits for the broadcast that comes late', () => {
    const s = setup();
    // Three joins commit as 1 (a), 2 (b), 3 (c); their broadcasts arrive 1, 3, then 2.
    s.fanouts.join(ROOM, 'a');
    s.fanouts.join(ROOM, 'b');
    s.broadcast(1, 'a');
    s.broadcast(3, 'c');
    // a's reply (at 1) comes first: the room here goes on from the highest number seen, 3.
    const a = new FakeConn('a');
    s.conns.set('a', a);
    s.fanouts.answered(ROOM, 'a', a as unknown as Attachable, 1);
    // b (answered at 2) reflects a; it must still hear of c, and 2 is not here yet.
    const b = new FakeConn('b');
    s.conns.set('b', b);
    s.fanouts.answered(ROOM, 'b', b as unknown as Attachable, 2);
    // Broadcast 2 (b's own join) comes last: a hears of b.
    s.broadcast(2, 'b');
    expect(a.joins().toSorted()).toEqual(['b', 'c']);
    expect(b.joins()).toEqual(['c']);
    expect(s.stateAsked()).toBe(0);
  });

  it('a joiner answered below a number that never comes gets the room by a resync', async () => {
    const s = setup(4);
    s.fanouts.join(ROOM, 'x');
    s.broadcast(4, 'w'); // 3 is lost on the way
    const x = new FakeConn('x');
    s.conns.set('x', x);
    s.fanouts.answered(ROOM, 'x', x as unknown as Attachable, 2);
    expect(x.events).toEqual([]); // not a member while 3 is missing
    await new Promise((r) => setTimeout(r, 400)); // GAP_WAIT_MS
    expect(s.stateAsked()).toBe(1);
    expect(x.events.map((e) => e.a)).toContain('eventRoomState');
  });

  it('broadcasts in order admit joiners at once, each hearing only what its reply lacks', () => {
    const s = setup();
    const a = joinAndAnswer(s, 'a', 1);
    s.broadcast(1, 'a');
    const b = joinAndAnswer(s, 'b', 2);
    s.broadcast(2, 'b');
    s.broadcast(3, 'c');
    expect(a.joins()).toEqual(['b', 'c']);
    expect(b.joins()).toEqual(['c']);
    expect(s.stateAsked()).toBe(0);
  });
});
