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
  NatsCredentials,
  NatsServer,
  type ServiceProcess,
  startPlatform,
  uniquePrefix,
  waitFor,
  type Platform,
} from '@switchboard/devstack';

let dir: string;
let nats: NatsServer;
let platform: Platform;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-readiness-'));
  // The run's credentials, so the services the devstack starts are who this server knows.
  nats = await NatsServer.start(dir, { credentials: NatsCredentials.current() });
  platform = await startPlatform({
    natsUrl: nats.url,
    subjectPrefix: uniquePrefix('ready'),
    pgServerUrl: inject('pgServerUrl'),
  });
});

afterAll(async () => {
  await platform.stop();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
});

async function statuses(): Promise<Record<string, Awaited<ReturnType<ServiceProcess['readyz']>>>> {
  const out: Awaited<ReturnType<typeof statuses>> = {};
  for (const [name, svc] of platform.services) out[name] = await svc.readyz();
  return out;
}

async function untilEvery(what: string, status: number, timeoutMs: number): Promise<void> {
  await waitFor(
    what,
    async () => Object.values(await statuses()).every((r) => r.status === status),
    {
      timeoutMs,
    },
  );
}

describe('readiness follows NATS', () => {
  it('is ready while NATS is up, 503 while it is down, ready again when it returns', async () => {
    for (const [name, r] of Object.entries(await statuses())) {
      expect(r.status, name).toBe(200);
      expect(r.body).toMatchObject({ status: 'ready', checks: { nats: 'ok' } });
    }

    await nats.kill();
    await untilEvery('every service to report NATS down', 503, 15_000);
    for (const r of Object.values(await statuses())) {
      expect(r.body).toMatchObject({ status: 'not ready', checks: { nats: 'failing' } });
    }

    await nats.restart();
    await untilEvery('every service to reconnect', 200, 20_000);
    // Nobody restarted a process: each reconnected on its own.
    for (const svc of platform.services.values()) expect(svc.process.running).toBe(true);
  });
});
