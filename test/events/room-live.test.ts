/**
 * room.live: with two events replicas, one leader publishes a snapshot of every room with
 * members each interval, agreeing with membership in PostgreSQL; when the leader is killed the
 * other takes over within one interval. At scale: thousands of rooms and one room too big for
 * a message, in pages bounded by rooms and bytes — every room and member exactly once per
 * tick, the big room in parts, no message over MEMBER_LIST_MAX_BYTES; liveRooms and roomInfo
 * paged the same way.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { harnessConnectOptions, type ServiceProcess } from '@switchboard/devstack';
import {
  BusHeaders,
  MEMBER_LIST_MAX_BYTES,
  Rooms,
  roomEvent,
  roomEventSubject,
  type RoomEvent,
  type RoomInfo,
  type RpcReply,
} from '@switchboard/protocol';
import { TestClient } from '../signaling/client.ts';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';

const INTERVAL_MS = 1000;
const LEASE_MS = 600;

interface Seen {
  at: number;
  from: string;
  event: RoomEvent<'room.live'>;
  /** The message's payload size. */
  bytes: number;
}

let sp: SignalingPlatform;
let nc: NatsConnection;
const events: ServiceProcess[] = [];
const seen: Seen[] = [];
const open: TestClient[] = [];

beforeAll(async () => {
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
  nc = await connect({ servers: inject('natsUrl'), ...harnessConnectOptions() });
  const prefix = sp.platform.env['NATS_SUBJECT_PREFIX'] ?? '';
  nc.subscribe(roomEventSubject(prefix, 'room.live'), {
    callback: (err, msg) => {
      if (err !== null) return;
      seen.push({
        at: Date.now(),
        from: msg.headers?.get(BusHeaders.caller) ?? '',
        event: msg.json<RoomEvent<'room.live'>>(),
        bytes: msg.data.length,
      });
    },
  });
  const env = { ROOM_LIVE_INTERVAL_MS: String(INTERVAL_MS), LEADER_LEASE_MS: String(LEASE_MS) };
  for (const id of ['events-1', 'events-2']) {
    events.push(await sp.spawn('events', id, { ...env, INSTANCE_ID: id }));
  }
});

afterAll(async () => {
  for (const c of open) c.kill();
  await nc.close();
  await sp.stop();
});

describe('room.live', () => {
  it('one replica publishes every interval; the snapshots agree with the membership', async () => {
    const a = await TestClient.join(sp.gw1.url, 'live-a', 'alice');
    const b = await TestClient.join(sp.gw2.url, 'live-a', 'bob');
    const c = await TestClient.join(sp.gw1.url, 'live-b', 'carol');
    open.push(a, b, c);
    const from = seen.length;
    await new Promise((r) => setTimeout(r, 3.5 * INTERVAL_MS));
    const window = seen.slice(from).filter((s) => s.event.roomId === 'live-a');
    // One snapshot per interval (not one per replica), all from the same replica.
    expect(window.length).toBeGreaterThanOrEqual(3);
    expect(window.length).toBeLessThanOrEqual(4);
    expect(new Set(window.map((s) => s.from)).size).toBe(1);
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
    const leaderId = seen.at(-1)?.from.replace(/^events\//, '');
    const leader = events.find((e) => e.process.name === leaderId);
    if (leader === undefined) throw new Error(`no leader among ${String(leaderId)}`);
    const killedAt = Date.now();
    await leader.process.kill();
    const deadline = killedAt + 4 * INTERVAL_MS;
    while (
      Date.now() < deadline &&
      !seen.some((s) => s.at > killedAt && s.from !== `events/${leaderId}`)
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const next = seen.find((s) => s.at > killedAt && s.from !== `events/${leaderId}`);
    expect(next).toBeDefined();
    // The last snapshot before the kill came at most one interval earlier; the next one is
    // due within another interval plus the lease.
    expect((next?.at ?? Infinity) - killedAt).toBeLessThanOrEqual(INTERVAL_MS + LEASE_MS + 500);
  });
});

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

  it('liveRooms pages end at their room or byte bound, inside a room too, and cover everyone once', async () => {
    const maxBytes = 4096;
    const limit = 50;
    const got = new Map<string, Member[]>();
    let next: RpcReply<typeof Rooms.liveRooms>['next'];
    let pages = 0;
    let inside = 0;
    do {
      const page = await sp.bus.request(Rooms.liveRooms, { limit, maxBytes, ...next });
      pages++;
      expect(JSON.stringify(page.rooms).length).toBeLessThanOrEqual(maxBytes);
      expect(page.rooms.length).toBeLessThanOrEqual(limit);
      if (next?.afterSocketId !== undefined) expect(page.rooms[0]?.roomId).toBe(next.after);
      for (const [i, r] of page.rooms.entries()) {
        // Only the first room of a page continues one; only the last goes on in the next.
        if (i > 0) expect(got.has(r.roomId)).toBe(false);
        got.set(r.roomId, [...(got.get(r.roomId) ?? []), ...r.sessions]);
      }
      if (page.next?.afterSocketId !== undefined) {
        // Cut inside: only a room that does not fit a page on its own.
        inside++;
        expect(page.rooms).toHaveLength(1);
        expect(page.next.after).toBe(BIG);
      }
      next = page.next;
    } while (next !== undefined);
    const expected = await membership(db);
    expect(got.size).toBe(expected.size);
    for (const [roomId, members] of expected) expect(got.get(roomId)).toEqual(sorted(members));
    expect(inside).toBeGreaterThan(BIG_SIZE / 100); // the big room spans pages
    expect(pages).toBeGreaterThan(SMALL_ROOMS / limit);

    // A page continuing a room whose other members left meanwhile: the room first, empty
    // (room.live's last part of it), then the rooms after it.
    const rest = await sp.bus.request(Rooms.liveRooms, {
      limit: 2,
      after: BIG,
      afterSocketId: 'f'.repeat(32),
    });
    expect(rest.rooms[0]).toEqual({ roomId: BIG, roomSize: BIG_SIZE, sessions: [] });
    expect(rest.rooms.slice(1).map((r) => r.roomId)).toEqual(['scale-01235', 'scale-01236']);
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
