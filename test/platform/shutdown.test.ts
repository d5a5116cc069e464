/**
 * SIGTERM stops every service gracefully: not ready first, bus drained, resources closed,
 * exit 0 with a clean `stopped` record — and the media node leaves no worker process.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ServiceProcess, testDatabase, uniquePrefix } from '@switchboard/devstack';
import { SERVICE_NAMES, type ServiceName } from '@switchboard/protocol';

let db: Awaited<ReturnType<typeof testDatabase>>;
const services = new Map<ServiceName, ServiceProcess>();

beforeAll(async () => {
  db = await testDatabase(inject('pgServerUrl'));
  const env = {
    NATS_URL: inject('natsUrl'),
    NATS_SUBJECT_PREFIX: uniquePrefix('shutdown'),
    DATABASE_URL: db.url,
    MEDIASOUP_WORKERS: '2',
    MEDIASOUP_RTC_PORT: '0',
  };
  await Promise.all(
    SERVICE_NAMES.map(async (name) => {
      services.set(name, await ServiceProcess.start(name, env));
    }),
  );
  await Promise.all(
    [...services.values()].map(async (s) => {
      await s.waitReady();
    }),
  );
});

afterAll(async () => {
  await Promise.all(
    [...services.values()].map(async (s) => {
      await s.stop();
    }),
  );
  await db.drop();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('graceful shutdown', () => {
  it.each(SERVICE_NAMES)('%s exits 0 on SIGTERM after a clean drain', async (name) => {
    const svc = services.get(name);
    if (svc === undefined) throw new Error(`${name} not started`);
    const workerPids = [
      ...svc.process.output().matchAll(/"pid":(\d+).*"msg":"mediasoup worker started"/g),
    ].map((m) => Number(m[1]));
    if (name === 'media') expect(workerPids).toHaveLength(2);

    const code = await svc.stop();
    expect(code).toBe(0);
    const out = svc.process.output();
    expect(out).toMatch(/"reason":"SIGTERM","msg":"shutting down"/);
    expect(out).toMatch(/"clean":true,"msg":"stopped"/);
    for (const pid of workerPids) expect(alive(pid)).toBe(false);
  });
});
