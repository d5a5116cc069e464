/**
 * room.live: with two events replicas, one leader publishes a snapshot of every room with
 * members each interval, agreeing with membership in PostgreSQL; when the leader is killed the
 * other takes over within one interval.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { harnessConnectOptions, type ServiceProcess } from '@switchboard/devstack';
import { BusHeaders, Rooms, roomEventSubject, type RoomEvent } from '@switchboard/protocol';
import { TestClient } from '../signaling/client.ts';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';

const INTERVAL_MS = 1000;
const LEASE_MS = 600;

interface Seen {
  at: number;
  from: string;
  event: RoomEvent<'room.live'>;
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
    expect(last?.sessions).toEqual(
      info.sessions.map((s) => ({ socketId: s.socketId, userId: s.userId })),
    );
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
