/**
 * SIGTERM stops every service gracefully: not ready first, bus drained, resources closed,
 * exit 0 with a clean `stopped` record — and the media node leaves no worker process.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pidAlive, startPlatform, uniquePrefix, type Platform } from '@switchboard/devstack';
import { SERVICE_NAMES } from '@switchboard/protocol';

let platform: Platform;

beforeAll(async () => {
  platform = await startPlatform({
    natsUrl: inject('natsUrl'),
    subjectPrefix: uniquePrefix('shutdown'),
    pgServerUrl: inject('pgServerUrl'),
    env: { MEDIASOUP_WORKERS: '2' },
  });
});

afterAll(async () => {
  await platform.stop();
});

describe('graceful shutdown', () => {
  it.each(SERVICE_NAMES)('%s exits 0 on SIGTERM after a clean drain', async (name) => {
    const svc = platform.get(name);
    const workerPids = [
      ...svc.process.output().matchAll(/"pid":(\d+).*"msg":"mediasoup worker started"/g),
    ].map((m) => Number(m[1]));
    if (name === 'media') expect(workerPids).toHaveLength(2);

    const code = await svc.stop();
    expect(code).toBe(0);
    const out = svc.process.output();
    expect(out).toMatch(/"reason":"SIGTERM","msg":"shutting down"/);
    expect(out).toMatch(/"clean":true,"msg":"stopped"/);
    for (const pid of workerPids) expect(pidAlive(pid)).toBe(false);
  });
});
