/**
 * The rooms service reports PostgreSQL in /readyz: ready with its database up, 503 naming
 * `postgres` while it is down, ready again when it is back (the pool reconnects). The
 * PostgreSQL server here is this test's own, so it can be stopped.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  PostgresServer,
  ServiceProcess,
  createDatabase,
  uniquePrefix,
  waitFor,
} from '@switchboard/devstack';

let pg: PostgresServer;
let rooms: ServiceProcess;

beforeAll(async () => {
  pg = await PostgresServer.start({ fast: true });
  const url = await createDatabase(pg.url, 'rooms_readiness');
  rooms = await ServiceProcess.start('rooms', {
    NATS_URL: inject('natsUrl'),
    NATS_SUBJECT_PREFIX: uniquePrefix('roomsready'),
    DATABASE_URL: url,
  });
});

afterAll(async () => {
  await rooms.stop();
  await pg.stop();
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

    await pg.restart();
    await waitFor(
      'rooms to report postgres back',
      async () => (await rooms.readyz()).status === 200,
      {
        timeoutMs: 20_000,
      },
    );
    expect(rooms.process.running).toBe(true);
  });
});
