/**
 * /readyz follows the dependencies: every service is ready with NATS up, answers 503 while
 * its NATS server is down, and is ready again once NATS is back — reconnecting by itself.
 * The NATS server here is this test's own, so it can be stopped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  NatsServer,
  ServiceProcess,
  testDatabase,
  uniquePrefix,
  waitFor,
} from '@switchboard/devstack';
import { SERVICE_NAMES, type ServiceName } from '@switchboard/protocol';

let dir: string;
let nats: NatsServer;
let db: Awaited<ReturnType<typeof testDatabase>>;
const services = new Map<ServiceName, ServiceProcess>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-readiness-'));
  nats = await NatsServer.start(dir);
  db = await testDatabase(inject('pgServerUrl'));
  const env = {
    NATS_URL: nats.url,
    NATS_SUBJECT_PREFIX: uniquePrefix('ready'),
    DATABASE_URL: db.url,
    MEDIASOUP_WORKERS: '1',
    MEDIASOUP_RTC_PORT: '0',
  };
  await Promise.all(
    SERVICE_NAMES.map(async (name) => {
      services.set(name, await ServiceProcess.start(name, env));
    }),
  );
});

afterAll(async () => {
  await Promise.all(
    [...services.values()].map(async (s) => {
      await s.stop();
    }),
  );
  await nats.stop();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

async function statuses(): Promise<Record<string, { status: number; body: unknown }>> {
  const out: Record<string, { status: number; body: unknown }> = {};
  for (const [name, svc] of services) out[name] = await svc.readyz();
  return out;
}

describe('readiness follows NATS', () => {
  it('is ready while NATS is up, 503 while it is down, ready again when it returns', async () => {
    await Promise.all(
      [...services.values()].map(async (s) => {
        await s.waitReady();
      }),
    );
    for (const [name, r] of Object.entries(await statuses())) {
      expect(r.status, name).toBe(200);
      expect(r.body).toMatchObject({ status: 'ready', checks: { nats: 'ok' } });
    }

    await nats.kill();
    await waitFor(
      'every service to report NATS down',
      async () => Object.values(await statuses()).every((r) => r.status === 503),
      { timeoutMs: 15_000 },
    );
    for (const r of Object.values(await statuses())) {
      expect(r.body).toMatchObject({ status: 'not ready', checks: { nats: 'failing' } });
    }

    await nats.restart();
    await waitFor(
      'every service to reconnect',
      async () => Object.values(await statuses()).every((r) => r.status === 200),
      { timeoutMs: 20_000 },
    );
    // Nobody restarted a process: each reconnected on its own.
    for (const svc of services.values()) expect(svc.process.running).toBe(true);
  });
});
