/**
 * The batcher's rules on its own, under fake timers (test/signaling/batching.test.ts runs it
 * in real gateways): small rooms at once, a big room's broadcasts after the window or at the
 * most a batch holds, each member what is for it, bytes encoded once, no timer left behind.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  EVENT_BATCH_MAX_ITEMS,
  ProtocolError,
  serverEventData,
  type EventFrameMessage,
  type RoomBroadcast,
} from '@switchboard/protocol';
import { Counter } from '@switchboard/service';
import { Batcher } from '../src/signaling/batcher.ts';
import type { EncodedFrame } from '../src/signaling/frames.ts';
import type { Attachable } from '../src/signaling/router.ts';

/** A connection that keeps what it is given. */
class Member implements Attachable {
  readonly connectionId: string;
  readonly batchEvents: boolean;
  readonly got: EncodedFrame[] = [];

  constructor(id: string, batchEvents: boolean) {
    this.connectionId = id;
    this.batchEvents = batchEvents;
  }

  /** What it received, parsed: each frame's action, and a batch's events' `userId`s. */
  get frames(): unknown[] {
    return this.got.map((f) => {
      const frame = JSON.parse(f.bytes.toString('utf8')) as { a: string; d: unknown };
      if (frame.a !== 'eventBatch') return (frame.d as { userId: string }).userId;
      expect(serverEventData.eventBatch.check(frame.d)).toBe(true);
      return (frame.d as { d: { userId: string } }[]).map((e) => e.d.userId);
    });
  }

  deliverEncoded(frame: EncodedFrame): void {
    this.got.push(frame);
  }
  deliver(): void {
    throw new Error('not for broadcasts');
  }
  detach(): void {
    throw new Error('not used');
  }
  updated(): void {
    throw new Error('not used');
  }
  call(): Promise<unknown> {
    return Promise.reject(new ProtocolError('SYSTEM'));
  }
}

const socketId = (n: number): string => n.toString(16).padStart(32, '0');
const join = (n: number): EventFrameMessage => ({
  a: 'eventJoin',
  d: { roomId: 'r', roomSize: n, socketId: socketId(n), userId: `u${String(n)}` },
});
/** n's join, to everyone but n. */
const joined = (n: number): RoomBroadcast => ({ roomId: 'r', event: join(n), except: socketId(n) });

const VIDEO = { width: { max: 640 }, height: { max: 360 }, frameRate: { max: 24 } };

let conns: Map<string, Member>;
let batches: Counter;
let carried: Counter;

function batcher(minMembers = 3): Batcher {
  return new Batcher({
    minMembers,
    windowMs: 50,
    metrics: { batches, batchedEvents: carried },
    log: pino({ level: 'silent' }),
    connection: (id) => conns.get(id),
  });
}

/** A room of members 1…n (odd ones read batches), as the router's live set. */
function room(n: number): { roomId: string; members: Set<string> } {
  const members = new Set<string>();
  for (let i = 1; i <= n; i++) add(members, i);
  return { roomId: 'r', members };
}

function add(members: Set<string>, i: number): Member {
  const m = new Member(`c${String(i)}`, i % 2 === 1);
  conns.set(socketId(i), m);
  members.add(socketId(i));
  return m;
}

const member = (i: number): Member => {
  const m = conns.get(socketId(i));
  if (m === undefined) throw new Error(`no member ${String(i)}`);
  return m;
};

async function count(c: Counter): Promise<number> {
  return (await c.get()).values[0]?.value ?? 0;
}

beforeEach(() => {
  vi.useFakeTimers();
  conns = new Map();
  batches = new Counter({ name: 'b', help: 'b', registers: [] });
  carried = new Counter({ name: 'e', help: 'e', registers: [] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a room below minMembers', () => {
  it('gets each broadcast at once, as plain frames encoded once, but its except', () => {
    const b = batcher();
    const r = room(2);
    b.fanOut(r, {
      ...joined(2),
      more: [{ a: 'eventUserMediaConfiguration', d: { audio: true, video: VIDEO } }],
    });
    expect(member(2).got).toEqual([]);
    expect(member(1).got).toHaveLength(2);
    b.fanOut(r, joined(3));
    expect(member(2).frames).toEqual(['u3']);
    // The same bytes for every member.
    expect(member(1).got[2]?.bytes).toBe(member(2).got[0]?.bytes);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never batches with minMembers 0', () => {
    const b = batcher(0);
    b.fanOut(room(100), joined(7));
    expect(member(1).frames).toEqual(['u7']);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('a room of minMembers or more', () => {
  it('gets its broadcasts after the window: a batch for those who read them, single frames for the others', async () => {
    const b = batcher();
    const r = room(4);
    for (const n of [2, 3]) b.fanOut(r, joined(n));
    b.memberAdded('r', socketId(5)); // as the router does, before the set has it
    const late = add(r.members, 5);
    b.fanOut(r, joined(5));
    b.fanOut(r, { roomId: 'r', event: join(9) });
    expect(member(1).got).toEqual([]);
    await vi.advanceTimersByTimeAsync(50);
    // In order; each without its own join; the late one without what came before it.
    expect(member(1).frames).toEqual([['u2', 'u3', 'u5', 'u9']]);
    expect(member(2).frames).toEqual(['u3', 'u5', 'u9']);
    expect(member(3).frames).toEqual([['u2', 'u5', 'u9']]);
    expect(member(4).frames).toEqual(['u2', 'u3', 'u5', 'u9']);
    expect(late.frames).toEqual([['u9']]);
    // Single frames are views of one encoding: the same bytes for 2 and 4.
    expect(member(2).got[0]?.bytes).toBe(member(4).got[1]?.bytes);
    expect(await count(batches)).toBe(3);
    expect(await count(carried)).toBe(4 + 3 + 1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a member added while a batch waits gets nothing of it when nothing follows', async () => {
    const b = batcher();
    const r = room(3);
    b.fanOut(r, joined(8));
    b.memberAdded('r', socketId(4));
    add(r.members, 4);
    await vi.advanceTimersByTimeAsync(50);
    expect(member(4).got).toEqual([]);
    expect(member(1).frames).toEqual([['u8']]);
  });

  it('is written at once when it holds the most a batch may, and what follows waits anew', async () => {
    const b = batcher();
    const r = room(3);
    for (let n = 1; n <= EVENT_BATCH_MAX_ITEMS; n++) b.fanOut(r, { roomId: 'r', event: join(n) });
    expect(member(1).got).toHaveLength(1);
    expect((member(1).frames[0] as string[]).length).toBe(EVENT_BATCH_MAX_ITEMS);
    expect(member(2).got).toHaveLength(EVENT_BATCH_MAX_ITEMS);
    expect(vi.getTimerCount()).toBe(0);
    b.fanOut(r, { roomId: 'r', event: join(2000) });
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(member(1).frames[1]).toEqual(['u2000']);
  });

  it('a broadcast that would not fit writes the batch before it', () => {
    const b = batcher();
    const r = room(3);
    for (let n = 1; n < EVENT_BATCH_MAX_ITEMS; n++) b.fanOut(r, { roomId: 'r', event: join(n) });
    const umc: EventFrameMessage = {
      a: 'eventUserMediaConfiguration',
      d: { audio: true, video: VIDEO },
    };
    b.fanOut(r, { roomId: 'r', event: join(5000), more: [umc] });
    expect((member(1).frames[0] as string[]).length).toBe(EVENT_BATCH_MAX_ITEMS - 1);
  });

  it('flush() writes it before its time; drop() and stop() leave no timer and write nothing', async () => {
    const b = batcher();
    const r = room(3);
    b.fanOut(r, joined(7));
    b.flush('r');
    expect(member(1).frames).toEqual([['u7']]);
    expect(vi.getTimerCount()).toBe(0);
    b.flush('r'); // nothing pending: nothing happens
    b.fanOut(r, joined(8));
    b.drop('r');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    expect(member(1).got).toHaveLength(1);
    b.fanOut(r, joined(9));
    b.stop();
    expect(vi.getTimerCount()).toBe(0);
    // Stopped: at once, no timer.
    b.fanOut(r, joined(10));
    expect(member(1).frames).toEqual([['u7'], 'u10']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('marks frames that carry eventMediaReset', async () => {
    const b = batcher();
    const r = room(3);
    b.fanOut(r, joined(7));
    b.fanOut(r, { roomId: 'r', event: { a: 'eventMediaReset', d: { reason: 'node' } } });
    await vi.advanceTimersByTimeAsync(50);
    expect(member(1).got.map((f) => f.mediaReset)).toEqual([true]);
    expect(member(2).got.map((f) => f.mediaReset)).toEqual([false, true]);
  });
});
