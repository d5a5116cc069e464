/**
 * Room broadcasts in order: every broadcast of a change of a room's state carries the room's
 * next number, a gateway that sees a gap resyncs the room (its members get eventRoomState),
 * and a client that resumes gets the room as it is now — on the real NATS, PostgreSQL, rooms
 * service and two gateways.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Rooms } from '@switchboard/protocol';
import { TestClient, joinVia } from './client.ts';
import { sleep } from './fixtures.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];

useSignaling(open, (p) => {
  sp = p;
});

const join = joinVia(() => sp, open);

const joinOf = (socketId: string | undefined) => (f: { a?: unknown; d?: unknown }) =>
  f.a === 'eventJoin' && (f.d as { socketId?: string }).socketId === socketId;

describe("a room's broadcast numbers", () => {
  it('number every change the others see, and none they do not', async () => {
    const seq = async (): Promise<number> =>
      (await sp.bus.request(Rooms.roomState, { roomId: 'room-numbers' })).roomSeq;
    const a = await join('gw1', 'room-numbers', 'a');
    const first = await seq();
    expect(first).toBeGreaterThan(0);
    const b = await join('gw2', 'room-numbers', 'b');
    expect(await seq()).toBe(first + 1);
    await join('gw2', 'room-numbers', 'watcher', { grants: { hidden: true } });
    expect(await seq()).toBe(first + 1);
    b.close(1000);
    await a.event('eventLeave');
    expect(await seq()).toBe(first + 2);
    const state = await sp.bus.request(Rooms.roomState, { roomId: 'room-numbers' });
    // The hidden member counts in the size, and is nobody's peer.
    expect(state).toMatchObject({
      roomSize: 2,
      sessions: [{ socketId: a.socketId, userId: 'a' }],
      complete: true,
    });
  });

  it('a gap (a broadcast lost on the way): the gateways resync the room, then go on', async () => {
    const a = await join('gw1', 'room-gap', 'a');
    const b = await join('gw2', 'room-gap', 'b');
    await a.waitFor(joinOf(b.socketId));
    // A number taken without its broadcast reaching anyone: as if NATS had lost it.
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    try {
      await db.query("SELECT sb_next_broadcast('room-gap')");
    } finally {
      await db.end();
    }
    const c = await join('gw1', 'room-gap', 'c');
    for (const [member, others] of [
      [a, [b, c]],
      [b, [a, c]],
    ] as const) {
      const state = await member.event('eventRoomState');
      expect(state.d).toMatchObject({
        roomId: 'room-gap',
        roomSize: 3,
        sessions: others.map((o) => ({ socketId: o.socketId, userId: o.userId })),
        complete: true,
      });
    }
    // c's eventJoin was in the state: not delivered again after it.
    await sleep(300);
    expect(a.events('eventJoin').filter(joinOf(c.socketId))).toEqual([]);
    // The next change is an ordinary broadcast again.
    const d = await join('gw2', 'room-gap', 'd');
    await a.waitFor(joinOf(d.socketId));
    await b.waitFor(joinOf(d.socketId));
    expect(a.events('eventRoomState')).toHaveLength(1);
    expect(b.events('eventRoomState')).toHaveLength(1);
  });

  it('a client that resumes gets the room as it is now (it missed what happened meanwhile)', async () => {
    const a = await join('gw1', 'room-resumed', 'a');
    const b = await join('gw2', 'room-resumed', 'b');
    await a.waitFor(joinOf(b.socketId));
    b.kill(); // a drop: b's session waits for it in its window
    const c = await join('gw1', 'room-resumed', 'c', { name: 'Cee' });
    await a.waitFor(joinOf(c.socketId));
    const back = await TestClient.connect(sp.gw1.url);
    open.push(back);
    expect((await back.resume(b)).s).toBe(true);
    const state = await back.event('eventRoomState');
    expect(state.d).toMatchObject({
      roomId: 'room-resumed',
      roomSize: 3,
      sessions: [
        { socketId: a.socketId, userId: 'a' },
        { socketId: c.socketId, userId: 'c', name: 'Cee' },
      ],
      complete: true,
    });
    // After reconnectR.
    const reply = back.frames.findIndex((f) => f.a === 'reconnectR');
    expect(back.frames.findIndex((f) => f.a === 'eventRoomState')).toBeGreaterThan(reply);
  });
});
