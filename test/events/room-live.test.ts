/**
 * room.live: with two events replicas, one leader publishes a snapshot of every room with
 * members each interval, agreeing with membership in PostgreSQL; when the leader is killed the
 * other takes over within one interval. At scale: thousands of rooms and one room too big for
 * a message, in pages bounded by rooms and bytes — every room and member exactly once per
 * tick, the big room in parts, no message over MEMBER_LIST_MAX_BYTES (or over a smaller
 * budget asked for); roomInfo paged the same way.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceProcess } from '@switchboard/devstack';
import {
  MEMBER_LIST_MAX_BYTES,
  Rooms,
  roomEvent,
  roomEventSubject,
  type RoomEvent,
  type RoomInfo,
} from '@switchboard/protocol';
import { joinVia, type TestClient } from '../signaling/client.ts';
import { isLeader, useEventsPlatform, type EventsPlatform } from './platform.ts';

const INTERVAL_MS = 1000;
const LEASE_MS = 600;

interface Seen {
  at: number;
  event: RoomEvent<'room.live'>;
  /** The message's payload size. */
  bytes: number;
}

let sp: EventsPlatform;
const seen: Seen[] = [];
const open: TestClient[] = [];

useEventsPlatform(open, async (p) => {
  sp = p;
  sp.nc.subscribe(roomEventSubject(sp.prefix, 'room.live'), {
    callback: (err, msg) => {
      if (err !== null) return;
      seen.push({
        at: Date.now(),
        event: msg.json<RoomEvent<'room.live'>>(),
        bytes: msg.data.length,
      });
    },
  });
  const env = { ROOM_LIVE_INTERVAL_MS: String(INTERVAL_MS), LEADER_LEASE_MS: String(LEASE_MS) };
  for (const id of ['events-1', 'events-2']) await sp.startReplica(id, env);
});

const join = joinVia(() => sp, open);

describe('room.live', () => {
  it('one replica publishes every interval; the snapshots agree with the membership', async () => {
    await join('gw1', 'live-a', 'alice');
    await join('gw2', 'live-a', 'bob');
    await join('gw1', 'live-b', 'carol');
    const from = seen.length;
    await new Promise((r) => setTimeout(r, 3.5 * INTERVAL_MS));
    const window = seen.slice(from).filter((s) => s.event.roomId === 'live-a');
    // One snapshot per interval (not one per replica): each tick once, one replica leads.
    expect(window.length).toBeGreaterThanOrEqual(3);
    expect(window.length).toBeLessThanOrEqual(4);
    expect(new Set(window.map((s) => s.event.ts)).size).toBe(window.length);
    expect(await leaders()).toHaveLength(1);
    const last = window.at(-1)?.event;
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'live-a' });
    expect(last?.roomSize).toBe(info.roomSize);
    // room.live lists members by socketId, roomInfo in join order.
    expect(last?.sessions).toEqual(
      info.sessions
        .map((s) => ({ socketId: s.socketId, userId: s.userId }))
        .sort((x, y) => (x.socketId < y.socketId ? -1 : 1)),
    );
    expect(last?.part).toBeUndefined();
    expect(last?.more).toBeUndefined();
    expect(seen.slice(from).some((s) => s.event.roomId === 'live-b')).toBe(true);
  });

  it('the leader dies: the other replica takes over within one interval', async () => {
    const [leader] = await leaders();
    if (leader === undefined) throw new Error('no leader');
    const killedAt = Date.now();
    await leader.process.kill();
    // Only a leader asks for ticks: a tick begun after the kill is the other replica's.
    const deadline = killedAt + 4 * INTERVAL_MS;
    const next = (): Seen | undefined =>
      seen.find((s) => s.event.ts > killedAt && s.event.roomId === 'live-a');
    while (Date.now() < deadline && next() === undefined) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(next()).toBeDefined();
    // The last snapshot before the kill came at most one interval earlier; the next one is
    // due within another interval plus the lease.
    expect((next()?.at ?? Infinity) - killedAt).toBeLessThanOrEqual(INTERVAL_MS + LEASE_MS + 500);
    const survivor = sp.replicas.find((e) => e !== leader);
    expect(survivor === undefined ? [] : await leaders([survivor])).toEqual([survivor]);
  });
});

/** The events replicas among `among` that hold the lease (alive, by their metrics). */
async function leaders(among: readonly ServiceProcess[] = sp.replicas): Promise<ServiceProcess[]> {
  const out: ServiceProcess[] = [];
  for (const e of among) if (await isLeader(e)) out.push(e);
  return out;
}

// ------------------------------------------------------------------------------ at scale

const SMALL_ROOMS = 2500;
const BIG = 'scale-01234-big';
/** About 70 bytes a member in room.live: some 850 KB, in two or three parts. */
const BIG_SIZE = 12_000;

type Member = { socketId: string; userId: string };

/** Every session in the database, by room: what one tick must hold. */
async function membership(db: pg.Client): Promise<Map<string, Member[]>> {
  const { rows } = await db.query<{ roomId: string; socketId: string; userId: string }>(
    'SELECT room_id AS "roomId", socket_id AS "socketId", user_id AS "userId" FROM sessions',
  );
  const rooms = new Map<string, Member[]>();
  for (const r of rows) {
    const list = rooms.get(r.roomId) ?? [];
    list.push({ socketId: r.socketId, userId: r.userId });
    rooms.set(r.roomId, list);
  }
  return rooms;
}

const bySocket = (a: Member, b: Member): number => (a.socketId < b.socketId ? -1 : 1);
const sorted = (m: readonly Member[]): Member[] => [...m].sort(bySocket);

describe('room.live at scale', () => {
  let db: pg.Client;
  let insertedAt = 0;

  beforeAll(async () => {
    db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    // Sessions straight into the database (thousands of WebSockets would be too heavy), on a
    // gateway row that stays alive for the test. Room i has 1 + i % 3 members.
    const room = `'scale-' || lpad(g::text, 5, '0')`;
    await db.query(`BEGIN;
      INSERT INTO gateways (id, started_at, last_seen, sockets)
        VALUES ('scale-gateway', now(), now() + interval '1 day', 0);
      INSERT INTO rooms (id) SELECT ${room} FROM generate_series(1, ${SMALL_ROOMS}) g;
      INSERT INTO rooms (id) VALUES ('${BIG}');
      INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id)
        SELECT md5('scale-' || g || '-' || k), ${room}, 'user-' || g || '-' || k, 'test',
               'scale-gateway', md5('conn-' || g || '-' || k)
        FROM generate_series(1, ${SMALL_ROOMS}) g, generate_series(0, g % 3) k;
      INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id)
        SELECT md5('big-' || g), '${BIG}', 'big-user-' || g, 'test', 'scale-gateway',
               md5('big-conn-' || g)
        FROM generate_series(1, ${BIG_SIZE}) g;
      COMMIT;`);
    insertedAt = Date.now();
  });

  afterAll(async () => {
    await db.end();
  });

  it('a tick has every room and every member once; the big room in parts; no message over the budget', async () => {
    // The first tick that began reading after the insert, once the tick after it has begun.
    let tickTs: number | undefined;
    const deadline = Date.now() + 8 * INTERVAL_MS;
    while (Date.now() < deadline) {
      const after = [...new Set(seen.map((s) => s.event.ts))].filter((ts) => ts > insertedAt);
      if (after.length >= 2) {
        tickTs = Math.min(...after);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (tickTs === undefined) throw new Error('no whole room.live tick after the insert');
    const tick = seen.filter((s) => s.event.ts === tickTs);
    const expected = await membership(db);
    expect(expected.get(BIG)).toHaveLength(BIG_SIZE);

    for (const s of tick) {
      expect(s.bytes).toBeLessThanOrEqual(MEMBER_LIST_MAX_BYTES);
      expect(roomEvent['room.live'].parse(s.event).ok).toBe(true);
    }
    const byRoom = new Map<string, RoomEvent<'room.live'>[]>();
    for (const { event } of tick)
      byRoom.set(event.roomId, [...(byRoom.get(event.roomId) ?? []), event]);
    expect([...byRoom.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [roomId, events] of byRoom) {
      const members = expected.get(roomId) ?? [];
      if (roomId === BIG) {
        // In parts, published in order: 1, 2, 3…, more on all but the last.
        expect(events.length).toBeGreaterThanOrEqual(2);
        expect(events.map((e) => e.part)).toEqual(events.map((_, i) => i + 1));
        expect(events.map((e) => e.more)).toEqual(events.map((_, i) => i < events.length - 1));
      } else {
        expect(events).toHaveLength(1);
        expect(events[0]?.part).toBeUndefined();
        expect(events[0]?.more).toBeUndefined();
      }
      for (const e of events) expect(e.roomSize).toBe(members.length);
      // Each member once, across the parts, in socketId order.
      expect(events.flatMap((e) => e.sessions)).toEqual(sorted(members));
    }
  });

  it('a tick asked for with a smaller budget: every message under it, every room and member once', async () => {
    const maxBytes = 4096;
    const ts = Date.now() + 3_600_000; // apart from the leader's ticks
    const reply = await sp.bus.request(Rooms.publishLive, { ts, maxBytes });
    // The messages went out before the reply; they reach this subscriber soon after.
    const deadline = Date.now() + 5000;
    const mine = (): Seen[] => seen.filter((s) => s.event.ts === ts);
    while (Date.now() < deadline && mine().length < reply.messages) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const tick = mine();
    expect(tick).toHaveLength(reply.messages);
    const expected = await membership(db);
    expect(reply.rooms).toBe(expected.size);
    const byRoom = new Map<string, RoomEvent<'room.live'>[]>();
    for (const s of tick) {
      expect(s.bytes).toBeLessThanOrEqual(maxBytes);
      expect(roomEvent['room.live'].parse(s.event).ok).toBe(true);
      byRoom.set(s.event.roomId, [...(byRoom.get(s.event.roomId) ?? []), s.event]);
    }
    expect([...byRoom.keys()].sort()).toEqual([...expected.keys()].sort());
    const big = byRoom.get(BIG) ?? [];
    // Some 60 members a part of 4 KiB.
    expect(big.length).toBeGreaterThan(BIG_SIZE / 100);
    expect(big.map((e) => e.part)).toEqual(big.map((_, i) => i + 1));
    expect(big.map((e) => e.more)).toEqual(big.map((_, i) => i < big.length - 1));
    for (const [roomId, members] of expected) {
      const events = byRoom.get(roomId) ?? [];
      for (const e of events) expect(e.roomSize).toBe(members.length);
      expect(events.flatMap((e) => e.sessions)).toEqual(sorted(members));
    }
  });

  it('a userId JSON must escape travels intact', async () => {
    const userId = 'quote" back\\slash \u00e9\u4e2d \u2028 \n tab\t';
    await db.query(`INSERT INTO rooms (id) VALUES ('scale-escape')`);
    await db.query(
      `INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id)
       VALUES (md5('escape'), 'scale-escape', $1, 'test', 'scale-gateway', md5('escape-conn'))`,
      [userId],
    );
    const ts = Date.now() + 7_200_000;
    await sp.bus.request(Rooms.publishLive, { ts });
    const deadline = Date.now() + 5000;
    const find = (): Seen | undefined =>
      seen.find((s) => s.event.ts === ts && s.event.roomId === 'scale-escape');
    while (Date.now() < deadline && find() === undefined) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(find()?.event.sessions.map((m) => m.userId)).toEqual([userId]);
    await db.query(`DELETE FROM rooms WHERE id = 'scale-escape'`);
  });

  it('roomInfo of a room too big for one reply: a page under the budget, then the rest by next', async () => {
    const first = await sp.bus.request(Rooms.roomInfo, { roomId: BIG });
    expect(first.roomSize).toBe(BIG_SIZE);
    expect(first.next).toBeDefined();
    expect(first.sessions.length).toBeGreaterThan(1000);
    expect(first.sessions.length).toBeLessThan(BIG_SIZE);
    expect(JSON.stringify(first).length).toBeLessThanOrEqual(MEMBER_LIST_MAX_BYTES);
    const all: RoomInfo['sessions'] = [...first.sessions];
    let after = first.next;
    while (after !== undefined) {
      const page = await sp.bus.request(Rooms.roomInfo, { roomId: BIG, after, limit: 2000 });
      expect(page.sessions.length).toBeLessThanOrEqual(2000);
      expect(page.roomSize).toBe(BIG_SIZE);
      all.push(...page.sessions);
      after = page.next;
    }
    // Every member once, in join order (the same joined_at here, then socketId).
    const { rows } = await db.query<{ socketId: string }>(
      `SELECT socket_id AS "socketId" FROM sessions WHERE room_id = $1
       ORDER BY joined_at, socket_id`,
      [BIG],
    );
    expect(all.map((s) => s.socketId)).toEqual(rows.map((r) => r.socketId));
    // A small room: whole, no next.
    const small = await sp.bus.request(Rooms.roomInfo, { roomId: 'scale-00002' });
    expect(small.sessions).toHaveLength(3);
    expect(small.next).toBeUndefined();
  });
});
