/**
 * A gateway cut off from NATS (through a TCP proxy this test can cut): the rooms service
 * takes it for dead. Back within the reconnect window, its sessions are active again and
 * peers never saw them leave; back after the window, the sessions are gone and their
 * sockets are closed with 4002 so the clients join again.
 */
import { createServer, Socket, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Rooms } from '@switchboard/protocol';
import { ServiceProcess, freePort } from '@switchboard/devstack';
import { sleep } from './fixtures.ts';
import { TestClient } from './client.ts';
import { TIMINGS, startSignaling, type SignalingPlatform } from './platform.ts';

/** A TCP proxy to NATS that can be cut (every connection dropped, none accepted). */
class CuttableProxy {
  readonly port: number;
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  private constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.#target = target;
  }

  static async start(natsUrl: string): Promise<CuttableProxy> {
    const u = new URL(natsUrl.split(',')[0] ?? natsUrl);
    const p = new CuttableProxy(await freePort(), { host: u.hostname, port: Number(u.port) });
    await p.restore();
    return p;
  }

  async restore(): Promise<void> {
    const server = createServer((client) => {
      const upstream = new Socket();
      this.#sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(this.#target.port, this.#target.host, () => {
        client.pipe(upstream).pipe(client);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    }
  }
}

let sp: SignalingPlatform;
let proxy: CuttableProxy;
let gw3: ServiceProcess;
const open: TestClient[] = [];

beforeAll(async () => {
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
  proxy = await CuttableProxy.start(inject('natsUrl'));
  gw3 = await ServiceProcess.start(
    'gateway',
    { ...sp.platform.env, NATS_URL: `nats://127.0.0.1:${proxy.port}` },
    { label: 'gateway-cut' },
  );
  await gw3.waitReady();
});

afterAll(async () => {
  for (const c of open) c.kill();
  await proxy.restore().catch(() => undefined);
  await gw3.stop();
  await proxy.cut();
  await sp.stop();
});

async function stateOf(roomId: string, socketId: string | undefined): Promise<string | undefined> {
  const info = await sp.bus.request(Rooms.roomInfo, { roomId });
  return info.sessions.find((s) => s.socketId === socketId)?.state;
}

describe('a gateway cut off from NATS', () => {
  it('back inside the window: its sessions are active again, peers saw nothing', async () => {
    const a = await TestClient.join(sp.gw1.url, 'room-cut-short', 'near');
    const b = await TestClient.join(gw3.url, 'room-cut-short', 'far');
    open.push(a, b);
    await proxy.cut();
    // Taken for dead: its session waits in the window.
    const deadline = Date.now() + TIMINGS.GATEWAY_DEAD_AFTER_MS + 3000;
    while ((await stateOf('room-cut-short', b.socketId)) !== 'disconnected') {
      if (Date.now() > deadline) throw new Error('the session never entered its window');
      await sleep(100);
    }
    await proxy.restore();
    const back = Date.now() + 10_000;
    while ((await stateOf('room-cut-short', b.socketId)) !== 'active') {
      if (Date.now() > back) throw new Error('the session was never made active again');
      await sleep(100);
    }
    await sleep(TIMINGS.RECONNECT_WINDOW_MS + 500);
    expect(a.events('eventLeave')).toEqual([]);
    expect(
      (await a.request('exchangeSdp', { to: b.socketId, sdp: { type: 'offer', sdp: 'v=0\r\n' } }))
        .s,
    ).toBe(true);
    await b.event('eventExchangeSdp');
    a.close();
    b.close();
  });

  it('back after the window: the session ended, its socket is closed with 4002', async () => {
    const a = await TestClient.join(sp.gw1.url, 'room-cut-long', 'near');
    const b = await TestClient.join(gw3.url, 'room-cut-long', 'far');
    open.push(a, b);
    await proxy.cut();
    const leave = await a.event(
      'eventLeave',
      TIMINGS.GATEWAY_DEAD_AFTER_MS + TIMINGS.RECONNECT_WINDOW_MS + 5000,
    );
    expect(leave.d).toMatchObject({ roomSize: 1, socketId: b.socketId });
    await proxy.restore();
    expect(await b.closed).toEqual({ code: 4002, reason: 'session expired' });
    a.close();
  });
});
