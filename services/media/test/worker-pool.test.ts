/**
 * The media node's worker pool: one WebRtcServer per worker on port base + slot, a dead
 * worker replaced in its slot on the same port, every worker process gone after close.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { freePort, pidAlive, waitFor } from '@switchboard/devstack';
import { WorkerPool, type WorkerPoolOptions } from '../src/workers.ts';

let pool: WorkerPool | undefined;

function options(portBase: number, more: Partial<WorkerPoolOptions> = {}): WorkerPoolOptions {
  return {
    count: 1,
    listenIp: '127.0.0.1',
    announcedAddress: undefined,
    portBase,
    logLevel: 'none',
    workerBin: undefined,
    log: pino({ level: 'silent' }),
    ...more,
  };
}

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/**
 * A port with the `n - 1` after it free too, below Linux's ephemeral range (32768 on): a port
 * the kernel gave out (freePort's) can have its neighbour taken by any outgoing connection of
 * the tests running beside this one.
 */
async function consecutiveFreePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${String(n)} consecutive free ports found`);
}

/** Whether `port` can be bound on 127.0.0.1 for TCP and for UDP (a WebRtcServer takes both). */
async function portFree(port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => {
      resolve(false);
    });
    srv.listen(port, '127.0.0.1', () => {
      srv.close(() => {
        resolve(true);
      });
    });
  });
  if (!tcp) return false;
  return await new Promise<boolean>((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => {
      try {
        sock.close();
      } catch {
        // a socket whose bind failed may be closed already: taken either way
      }
      resolve(false);
    });
    sock.bind(port, '127.0.0.1', () => {
      sock.close(() => {
        resolve(true);
      });
    });
  });
}

describe('WorkerPool', () => {
  it('runs a WebRtcServer per worker on consecutive ports and replaces a dead worker', async () => {
    const base = await consecutiveFreePorts(2);
    pool = await WorkerPool.create(options(base, { count: 2, announcedAddress: '203.0.113.10' }));
    expect(pool.slots.map((s) => s.port)).toEqual([base, base + 1]);
    expect(pool.healthy).toBe(true);

    // ICE candidates carry the announced address, on the slot's port.
    const slot1 = pool.slots[1];
    if (slot1 === undefined) throw new Error('no slot 1');
    const router = await slot1.worker.createRouter({ mediaCodecs: [] });
    const t = await router.createWebRtcTransport({ webRtcServer: slot1.webRtcServer });
    expect(t.iceCandidates.map((c) => `${c.protocol} ${c.address}:${c.port}`).sort()).toEqual([
      `tcp 203.0.113.10:${base + 1}`,
      `udp 203.0.113.10:${base + 1}`,
    ]);

    const deaths: number[] = [];
    pool.on('workerdied', (i) => deaths.push(i));
    const oldPid = slot1.worker.pid;
    process.kill(oldPid, 'SIGKILL');
    await waitFor('the death to be noticed', async () => deaths.length === 1);
    expect(deaths).toEqual([1]);
    await waitFor('slot 1 to be refilled', async () => pool?.healthy === true, {
      timeoutMs: 10_000,
    });
    const refilled = pool.slots[1];
    expect(refilled?.worker.pid).not.toBe(oldPid);
    expect(refilled?.port).toBe(base + 1);
    expect(pool.restarts).toBe(1);
    // The other worker never noticed.
    expect(pool.slots[0]?.worker.died).toBe(false);

    const pids = pool.slots.map((s) => s.worker.pid);
    await pool.close();
    pool = undefined;
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
  });

  it('fails to start when its port is taken, leaving no worker behind', async () => {
    const base = await freePort();
    const first = await WorkerPool.create(options(base));
    try {
      await expect(WorkerPool.create(options(base))).rejects.toThrow();
    } finally {
      await first.close();
    }
  });
});
