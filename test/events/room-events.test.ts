/**
 * Room events through the outbox: membership changes in PostgreSQL become room.created,
 * room.join, room.leave and room.closed in the JetStream stream, in each room's order, with
 * ids and consecutive sequence numbers, never twice — on the real NATS (JetStream) and
 * PostgreSQL, with the rooms service and two gateways.
 */
import { execFile } from 'node:child_process';
import { join as joinPath } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { NODE, ROOT, waitFor } from '@switchboard/devstack';
import { Rooms, roomEventStream } from '@switchboard/protocol';
import { TestClient, joinVia } from '../signaling/client.ts';
import { TIMINGS } from '../signaling/platform.ts';
import { useEventsPlatform, type EventsPlatform, type StoredEvent } from './platform.ts';

const execFileP = promisify(execFile);
let sp: EventsPlatform;
const open: TestClient[] = [];

useEventsPlatform(open, (p) => {
  sp = p;
});

const join = joinVia(() => sp, open);

const kinds = (events: StoredEvent[]): string[] => events.map((e) => sp.eventName(e.subject));

function expectWellFormed(events: StoredEvent[]): void {
  const ids = new Set(events.map((e) => e.data.id));
  expect(ids.size).toBe(events.length);
  const seqs = events.map((e) => e.data.seq);
  expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 1) + i));
  for (const e of events) expect(e.data.ts).toBeGreaterThan(Date.now() - 120_000);
}

describe('room events through the outbox', () => {
  it('joins and leaves become room.created, room.join, room.leave, room.closed, in order', async () => {
    const a = await join('gw1', 'ev-basic', 'alice');
    const b = await join('gw2', 'ev-basic', 'bob');
    b.close(1000);
    await a.event('eventLeave');
    a.close(1000);
    await waitFor('six events', async () => (await sp.stored('ev-basic')).length === 6);
    const events = await sp.stored('ev-basic');
    expect(kinds(events)).toEqual([
      'room.created',
      'room.join',
      'room.join',
      'room.leave',
      'room.leave',
      'room.closed',
    ]);
    expectWellFormed(events);
    expect(events[0]?.data.seq).toBe(1);
    expect(events[1]?.data).toMatchObject({
      roomId: 'ev-basic',
      roomSize: 1,
      socketId: a.socketId,
      userId: 'alice',
      platform: 'Web',
      appVersion: '1',
      version: 'node',
    });
    expect(events[2]?.data).toMatchObject({ roomSize: 2, socketId: b.socketId, userId: 'bob' });
    expect(events[3]?.data).toMatchObject({ roomSize: 1, socketId: b.socketId, userId: 'bob' });
    expect(events[4]?.data).toMatchObject({ roomSize: 0, socketId: a.socketId });

    // The room opens again later: its numbers go on.
    const c = await join('gw1', 'ev-basic', 'carol');
    c.close(1000);
    await waitFor('the room again', async () => (await sp.stored('ev-basic')).length === 10);
    const again = await sp.stored('ev-basic');
    expect(kinds(again).slice(6)).toEqual([
      'room.created',
      'room.join',
      'room.leave',
      'room.closed',
    ]);
    expectWellFormed(again);
  });

  it('a reconnect is no event; a session whose window passes leaves, after its join', async () => {
    const a = await join('gw1', 'ev-window', 'alice');
    const b = await join('gw1', 'ev-window', 'bob');
    const socketId = b.socketId;
    b.kill();
    const b2 = await TestClient.connect(sp.gw2.url);
    open.push(b2);
    expect((await b2.resume(b)).s).toBe(true);
    b2.kill();
    await a.event('eventLeave', TIMINGS.RECONNECT_WINDOW_MS + 10_000);
    await waitFor('the leave', async () => (await sp.stored('ev-window')).length === 4);
    const events = await sp.stored('ev-window');
    expect(kinds(events)).toEqual(['room.created', 'room.join', 'room.join', 'room.leave']);
    expect(events[3]?.data).toMatchObject({ socketId, userId: 'bob', roomSize: 1 });
    expectWellFormed(events);
  });

  it("a killed gateway's sessions leave too", async () => {
    const gw = await sp.spawn('gateway', 'gateway-doomed');
    const a = await join('gw1', 'ev-gwdead', 'alice');
    const c = await TestClient.join(gw.url, 'ev-gwdead', 'carol');
    await gw.process.kill();
    await a.event(
      'eventLeave',
      TIMINGS.GATEWAY_DEAD_AFTER_MS + TIMINGS.RECONNECT_WINDOW_MS + 10_000,
    );
    await waitFor('the leave', async () => (await sp.stored('ev-gwdead')).length === 4);
    const events = await sp.stored('ev-gwdead');
    expect(kinds(events)).toEqual(['room.created', 'room.join', 'room.join', 'room.leave']);
    expect(events[3]?.data).toMatchObject({ socketId: c.socketId, userId: 'carol' });
  });

  it('an event published again (a retried publish) is stored once', async () => {
    const a = await join('gw1', 'ev-retry', 'alice');
    await waitFor('two events', async () => (await sp.stored('ev-retry')).length === 2);
    // As if the relay had published, then failed before marking them: they go out again.
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    try {
      const r = await db.query(
        "UPDATE room_events SET published_at = NULL WHERE room_id = 'ev-retry'",
      );
      expect(r.rowCount).toBe(2);
      await waitFor('republished', async () => {
        const left = await db.query(
          "SELECT count(*)::int AS n FROM room_events WHERE room_id = 'ev-retry' AND published_at IS NULL",
        );
        return (left.rows[0] as { n: number }).n === 0;
      });
    } finally {
      await db.end();
    }
    a.close(1000);
    await waitFor('four events', async () => (await sp.stored('ev-retry')).length === 4);
    const events = await sp.stored('ev-retry');
    expect(kinds(events)).toEqual(['room.created', 'room.join', 'room.leave', 'room.closed']);
    expectWellFormed(events);
  });

  it("the tail command prints a room's events from the stream, filtered", async () => {
    const { stdout } = await execFileP(
      NODE,
      [
        joinPath(ROOT, 'services/events/src/tail.ts'),
        '--room',
        'ev-basic',
        '--type',
        'room.join,room.leave',
      ],
      {
        env: sp.toolEnv('tail'),
        timeout: 20_000,
      },
    );
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { stream: number; subject: string; event: StoredEvent['data'] });
    expect(lines.map((l) => sp.eventName(l.subject))).toEqual([
      'room.join',
      'room.join',
      'room.leave',
      'room.leave',
      'room.join',
      'room.leave',
    ]);
    expect(lines.every((l) => l.event.roomId === 'ev-basic')).toBe(true);
    // From a point in the stream: only what follows it.
    const from = lines[2]?.stream ?? 0;
    const later = await execFileP(
      NODE,
      [joinPath(ROOT, 'services/events/src/tail.ts'), '--room', 'ev-basic', '--from', String(from)],
      {
        env: sp.toolEnv('tail'),
      },
    );
    // bob's leave, alice's, closed; created, carol's join and leave, closed.
    expect(later.stdout.trim().split('\n')).toHaveLength(7);
  });

  it("a publish the stream refuses holds its room's later events back, not other rooms'; an operator's settings stay", async () => {
    const name = roomEventStream(sp.prefix);
    const original = (await sp.jsm.streams.info(name)).config;
    await join('gw1', 'ev-order', 'alice');
    await waitFor('alice', async () => (await sp.stored('ev-order')).length === 2);
    const aliceJoin = await sp.jsm.streams.getMessage(name, {
      last_by_subj: `${sp.prefix}.room.join`,
    });
    const size = aliceJoin?.data.length ?? 0;
    expect(size).toBeGreaterThan(0);
    // An operator's own limits: a room.join with a 128-character userId (123 bytes more than
    // alice's) is now too big for the stream; every other event still fits.
    await sp.jsm.streams.update(name, {
      ...original,
      max_msg_size: size + 90,
      max_msgs: 1_000_000,
    });
    try {
      const long = 'u'.repeat(128);
      await join('gw1', 'ev-order', long);
      await join('gw2', 'ev-order', 'carol');
      await join('gw2', 'ev-other', 'dave');
      await waitFor('the other room', async () => (await sp.stored('ev-other')).length === 2);
      await new Promise((r) => setTimeout(r, 1500));
      // carol's join waits behind the refused one, though the stream would take it.
      expect(await sp.stored('ev-order')).toHaveLength(2);

      // The operator lifts the limit: the held events go out, in their room's order.
      const now = (await sp.jsm.streams.info(name)).config;
      await sp.jsm.streams.update(name, { ...now, max_msg_size: -1 });
      await waitFor('the held events', async () => (await sp.stored('ev-order')).length === 4, {
        timeoutMs: 20_000,
      });
      const events = await sp.stored('ev-order');
      expect(kinds(events)).toEqual(['room.created', 'room.join', 'room.join', 'room.join']);
      expect(events.map((e) => e.data['userId'])).toEqual([undefined, 'alice', long, 'carol']);
      expectWellFormed(events);

      // A replica configured with another size limit applies it, and keeps the rest as the
      // operator left it.
      const replica = await sp.spawn('rooms', 'rooms-limits', {
        EVENTS_STREAM_MAX_BYTES: String(512 * 1024 * 1024),
      });
      try {
        await waitFor(
          'the new limit',
          async () => (await sp.jsm.streams.info(name)).config.max_bytes === 512 * 1024 * 1024,
        );
        const after = (await sp.jsm.streams.info(name)).config;
        expect(after.max_msgs).toBe(1_000_000);
        expect(after.max_msg_size).toBe(-1);
        expect(after.subjects).toEqual(original.subjects);
      } finally {
        expect(await replica.stop()).toBe(0);
      }
    } finally {
      await sp.jsm.streams.update(name, original);
    }
  });

  it('a rooms service cut off from NATS loses no event: its outbox drains when NATS is back', async () => {
    // The only rooms service from here on talks to NATS through a proxy the test can cut.
    const { service: rooms, proxy } = await sp.spawnCuttable('rooms', 'rooms-cut');
    await sp.platform.get('rooms').stop();
    await join('gw1', 'ev-outage', 'alice');
    const b = await join('gw1', 'ev-outage', 'bob');
    await waitFor('the joins', async () => (await sp.stored('ev-outage')).length === 3);
    b.kill(); // a drop: bob's session waits for its window
    await waitFor('bob disconnected', async () => {
      const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'ev-outage' });
      return info.sessions.some((x) => x.state === 'disconnected');
    });
    await proxy.cut();
    // The window passes while the rooms service cannot reach NATS: the leave is written to
    // PostgreSQL (the outbox) only.
    await new Promise((r) => setTimeout(r, TIMINGS.RECONNECT_WINDOW_MS + 1500));
    expect(await sp.stored('ev-outage')).toHaveLength(3);
    await proxy.restore();
    await waitFor(
      'the leave after the outage',
      async () => (await sp.stored('ev-outage')).length === 4,
      {
        timeoutMs: 30_000,
      },
    );
    const events = await sp.stored('ev-outage');
    expect(kinds(events)).toEqual(['room.created', 'room.join', 'room.join', 'room.leave']);
    expect(events[3]?.data).toMatchObject({ socketId: b.socketId, userId: 'bob' });
    expectWellFormed(events);
    expect(rooms.process.running).toBe(true);
  });
});
