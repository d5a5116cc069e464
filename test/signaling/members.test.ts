/**
 * Who is in the room: the token's `name` and `metadata` reach the other members, in
 * `joinR.sessions` and in `eventJoin` when someone arrives (never of a hidden member); the
 * `bitrate` a client announces in `join` is in its room.join event (null when it announced
 * none).
 */
import { describe, expect, it } from 'vitest';
import { mintToken } from '@switchboard/devstack';
import {
  ErrorCodes,
  Rooms,
  RoomsAdmin,
  roomEvent,
  roomEventSubject,
  sessionGrants,
  type JoinReply,
  type RoomEvent,
} from '@switchboard/protocol';
import { TestClient } from './client.ts';
import { sleep } from './fixtures.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];
const joins: RoomEvent<'room.join'>[] = [];

useSignaling(open, async (p) => {
  sp = p;
  sp.bus.subscribe(roomEventSubject(sp.bus.prefix, 'room.join'), roomEvent['room.join'], (e) => {
    joins.push(e);
  });
});

async function join(
  gw: 'gw1' | 'gw2',
  room: string,
  user: string,
  claims: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<{ c: TestClient; reply: JoinReply }> {
  const c = await TestClient.connect(sp[gw].url);
  open.push(c);
  const r = await c.request('join', {
    roomId: room,
    bearer: await mintToken({ sub: user, rooms: [room], extra: claims }),
    platform: 'Web',
    ...extra,
  });
  expect(r.s, JSON.stringify(r)).toBe(true);
  return { c, reply: r.d as JoinReply };
}

describe('who is in the room', () => {
  it('names and metadata in joinR.sessions and eventJoin; hidden members arrive for nobody', async () => {
    const room = 'members-1';
    const alice = await join(
      'gw1',
      room,
      'alice',
      { name: 'Alice', metadata: '{"role":"teacher"}' },
      { bitrate: 1_500_000 },
    );
    expect(alice.reply.sessions).toEqual([]);
    const bob = await join('gw2', room, 'bob', { name: 'Bob' });
    expect(bob.reply.sessions).toEqual([
      {
        socketId: alice.reply.socketId,
        userId: 'alice',
        name: 'Alice',
        metadata: '{"role":"teacher"}',
      },
    ]);
    const arrived = await alice.c.event('eventJoin');
    expect(arrived.d).toEqual({
      roomId: room,
      roomSize: 2,
      socketId: bob.reply.socketId,
      userId: 'bob',
      name: 'Bob',
    });
    // Nobody hears of a hidden member's arrival; nor does the one arriving hear of itself.
    const recorder = await join('gw1', room, 'rec', { grants: { hidden: true } });
    expect(recorder.reply.sessions).toHaveLength(2);
    await sleep(500);
    expect(alice.c.events('eventJoin')).toHaveLength(1);
    expect(bob.c.events('eventJoin')).toHaveLength(0);
    expect(recorder.c.events('eventJoin')).toHaveLength(0);
  });

  it('room.join carries the bitrate announced in join, or null', async () => {
    const room = 'members-2';
    const a = await join('gw1', room, 'carol', {}, { bitrate: 800_000 });
    const b = await join('gw2', room, 'dave', {});
    const deadline = Date.now() + 10_000;
    const of = (socketId: string): RoomEvent<'room.join'> | undefined =>
      joins.find((e) => e.socketId === socketId);
    while (of(a.reply.socketId) === undefined || of(b.reply.socketId) === undefined) {
      if (Date.now() > deadline) throw new Error('room.join events did not come');
      await sleep(50);
    }
    expect(of(a.reply.socketId)?.bitrate).toBe(800_000);
    expect(of(b.reply.socketId)?.bitrate).toBeNull();
  });

  it('a bad bitrate or oversized metadata is refused', async () => {
    const c = await TestClient.connect(sp.gw1.url);
    open.push(c);
    const r = await c.request('join', {
      roomId: 'members-3',
      bearer: await mintToken({ sub: 'eve', rooms: ['members-3'] }),
      platform: 'Web',
      bitrate: -1,
    });
    expect(r.s).toBe(false);
    const big = await TestClient.connect(sp.gw1.url);
    open.push(big);
    const r2 = await big.request('join', {
      roomId: 'members-3',
      bearer: await mintToken({
        sub: 'eve',
        rooms: ['members-3'],
        extra: { metadata: 'm'.repeat(4097) },
      }),
      platform: 'Web',
    });
    expect(r2.s).toBe(false);
  });

  it('joins at once: each member hears of every other exactly once, in joinR or in an eventJoin', async () => {
    const room = 'members-crowd';
    // Twenty joins in flight together through both gateways: broadcasts of earlier joins
    // reach a joiner's gateway while its own join is in progress.
    const crowd = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        join(i % 2 === 0 ? 'gw1' : 'gw2', room, `crowd-${i}`, {}),
      ),
    );
    const everyone = crowd.map((m) => m.reply.socketId);
    /**
     * Whom a member knows: its joinR's sessions, then its frames in order — an eventJoin adds
     * one, and an eventRoomState (its gateway resynced the room: on a loaded machine a
     * broadcast can come later than GAP_WAIT_MS) replaces what came before, as clients do.
     */
    const known = (m: (typeof crowd)[number]): Set<string> => {
      let ids = new Set(m.reply.sessions.map((s) => s.socketId));
      for (const f of m.c.frames) {
        const d = f.d as { roomId?: string; socketId?: string; sessions?: { socketId: string }[] };
        if (f.s !== undefined || d.roomId !== room) continue;
        if (f.a === 'eventJoin' && d.socketId !== undefined) ids.add(d.socketId);
        if (f.a === 'eventRoomState') ids = new Set((d.sessions ?? []).map((x) => x.socketId));
      }
      return ids;
    };
    for (const [i, m] of crowd.entries()) {
      const others = everyone.filter((id) => id !== m.reply.socketId);
      await m.c.waitFor(
        () => others.every((id) => known(m).has(id)),
        10_000,
        `crowd-${i} to hear of all`,
      );
    }
    // A second eventJoin for someone would come right after: give it the time to.
    await sleep(300);
    for (const [i, m] of crowd.entries()) {
      const others = everyone.filter((id) => id !== m.reply.socketId);
      expect([...known(m)].toSorted(), `crowd-${i}`).toEqual(others.toSorted());
      // Nobody twice: an eventJoin never names a member the joinR listed or one told before.
      const told = m.c.events('eventJoin').map((f) => (f.d as { socketId: string }).socketId);
      const heard = [...m.reply.sessions.map((s) => s.socketId), ...told];
      expect(new Set(heard).size, `crowd-${i}`).toBe(heard.length);
      // Without a resync, joinR and the eventJoins are the whole room.
      if (m.c.events('eventRoomState').length === 0)
        expect(heard.toSorted(), `crowd-${i}`).toEqual(others.toSorted());
    }
    for (const m of crowd) m.c.close(1000);
  });

  it('a room bigger than one reply: joinR lists the first page, listMembers the rest', async () => {
    await sp.bus.request(RoomsAdmin.createRoom, {
      roomId: 'room-big',
      capacity: 200,
      // Long enough for the first join to find it: with 0, a sweep between the creation and
      // that join closed it (under load), and the join made a new room of the default size.
      emptyTimeoutS: 120,
    });
    // 102 visible members and 2 hidden ones, admitted straight through the rooms service.
    const bulk = Array.from({ length: 104 }, (_, n) => ({
      socketId: `b0${n.toString(16).padStart(30, '0')}`,
      connectionId: `c0${n.toString(16).padStart(30, '0')}`,
      hidden: n === 10 || n === 103,
    }));
    for (const [n, b] of bulk.entries()) {
      await sp.bus.request(Rooms.join, {
        socketId: b.socketId,
        connectionId: b.connectionId,
        gatewayId: 'gw-bulk',
        roomId: 'room-big',
        userId: `bulk-${n}`,
        platform: 'Web',
        resumeHash: 'd'.repeat(64),
        tokenExpiresAt: Date.now() + 3_600_000,
        grants: sessionGrants({ hidden: b.hidden }),
        ...(n === 50 ? { name: 'Fifty' } : {}),
      });
    }
    const visible = bulk.filter((b) => !b.hidden).map((b) => b.socketId);
    const { c, reply } = await join('gw1', 'room-big', 'last', {});
    expect(reply.roomSize).toBe(105);
    expect(reply.sessions.map((m) => m.socketId)).toEqual(visible.slice(0, 100));
    expect(reply.sessions[49]).toEqual({ socketId: visible[49], userId: 'bulk-50', name: 'Fifty' });
    expect(reply.sessionsNext).toMatch(/^\d+\.[0-9a-f]{32}$/);
    const one = await c.request('listMembers', { after: reply.sessionsNext, limit: 1 });
    expect(one.d).toEqual({
      sessions: [{ socketId: visible[100], userId: 'bulk-101' }],
      next: expect.any(String) as unknown,
    });
    const rest = await c.request('listMembers', { after: (one.d as { next: string }).next });
    // The last page: no `next`, and never the asker itself.
    expect(rest.d).toEqual({ sessions: [{ socketId: visible[101], userId: 'bulk-102' }] });
    expect(
      await c.request('listMembers', { after: 'nope' }),
      'a cursor that is not one',
    ).toMatchObject({ s: false, e: ErrorCodes.JSON_FIELD_INVALID.code });
    const stranger = await TestClient.connect(sp.gw2.url);
    open.push(stranger);
    expect(
      await stranger.request('listMembers', { after: reply.sessionsNext }),
      'before joining',
    ).toMatchObject({ s: false });
    for (const b of bulk) {
      await sp.bus.request(Rooms.disconnect, {
        socketId: b.socketId,
        connectionId: b.connectionId,
        leave: true,
      });
    }
    c.close(1000);
  });
});
