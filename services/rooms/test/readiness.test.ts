/**
 * The rooms service follows PostgreSQL: /readyz is ready with its database up, 503 naming
 * `postgres` while it is down, ready again when it is back (the pool reconnects); requests
 * during the outage get SERVICE_UNAVAILABLE (not an internal error), and work again after.
 * The PostgreSQL server here is this test's own, so it can be stopped.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Bus } from '@switchboard/bus';
import {
  PostgresServer,
  ServiceProcess,
  createDatabase,
  harnessNatsAuth,
  migrate,
  uniquePrefix,
  waitFor,
} from '@switchboard/devstack';
import { ErrorCodes, Rooms, sessionGrants } from '@switchboard/protocol';

let pg: PostgresServer;
let rooms: ServiceProcess;
let bus: Bus;
// Set as each is started: a set-up that failed half-way still stops what it started.
let started: { pg?: PostgresServer; rooms?: ServiceProcess; bus?: Bus } = {};

beforeAll(async () => {
  pg = await PostgresServer.start({ fast: true });
  started = { pg };
  const url = await createDatabase(pg.url, 'rooms_readiness');
  await migrate(url);
  const prefix = uniquePrefix('roomsready');
  rooms = await ServiceProcess.start('rooms', {
    NATS_URL: inject('natsUrl'),
    NATS_SUBJECT_PREFIX: prefix,
    DATABASE_URL: url,
  });
  started.rooms = rooms;
  bus = new Bus({
    servers: inject('natsUrl'),
    auth: harnessNatsAuth(),
    prefix,
    service: 'gateway',
    instanceId: 'readiness-test',
    log: pino({ level: 'silent' }),
    requestTimeoutMs: 5000,
  });
  started.bus = bus;
});

afterAll(async () => {
  await started.bus?.close();
  await started.rooms?.stop();
  await started.pg?.stop();
});

const joinRequest = (n: number) => ({
  socketId: n.toString(16).padStart(32, '0'),
  connectionId: 'c'.repeat(32),
  gatewayId: 'gw-test',
  roomId: 'room-outage',
  userId: `u${n}`,
  platform: 'Web',
  resumeHash: 'd'.repeat(64),
  tokenExpiresAt: Date.now() + 3_600_000,
  grants: sessionGrants(undefined),
});

describe('rooms readiness follows PostgreSQL', () => {
  it('is 503 while the database is down and ready again when it returns', async () => {
    await rooms.waitReady();
    expect(await rooms.readyz()).toEqual({
      status: 200,
      body: { status: 'ready', checks: { nats: 'ok', postgres: 'ok' } },
    });

    await pg.kill();
    await waitFor(
      'rooms to report postgres down',
      async () => (await rooms.readyz()).status === 503,
      {
        timeoutMs: 15_000,
      },
    );
    expect((await rooms.readyz()).body).toEqual({
      status: 'not ready',
      checks: { nats: 'ok', postgres: 'failing' },
    });
    // Settled together: each may fail before the one before it is looked at.
    const outcomes = await Promise.allSettled([
      bus.request(Rooms.join, joinRequest(1)),
      bus.request(Rooms.lookup, { socketId: 'a'.repeat(32), resumeHash: 'd'.repeat(64) }),
      bus.request(Rooms.roomInfo, { roomId: 'room-outage' }),
    ]);
    for (const o of outcomes) {
      expect(o).toMatchObject({
        status: 'rejected',
        reason: { code: ErrorCodes.SERVICE_UNAVAILABLE.code },
      });
    }

    await pg.restart();
    await waitFor(
      'rooms to report postgres back',
      async () => (await rooms.readyz()).status === 200,
      {
        timeoutMs: 20_000,
      },
    );
    expect(rooms.process.running).toBe(true);
    expect(await bus.request(Rooms.join, joinRequest(2))).toMatchObject({ roomSize: 1 });
  });
});
