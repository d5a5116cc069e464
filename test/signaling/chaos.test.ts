/**
 * Signaling under network chaos (the original system was tested with netem through pumba):
 * a client in a network namespace of this test's own, joined to a gateway over a veth pair.
 * This machine's kernel has no `sch_netem`, so the link is shaped with what it has: a token
 * bucket (`tc tbf`) for a slow link, and the link taken down for a total outage.
 *
 * - A slow link (256 kbit/s each way): a 30 KB SDP takes a second to arrive; heartbeats
 *   hold, nothing is dropped.
 * - An outage: the gateway cuts the silent socket after WS_IDLE_TIMEOUT_MS; the session waits
 *   in its window (peers see no eventLeave).
 * - The link back: the client notices its dead socket, reconnects with its socketId, and
 *   relays flow again; peers never saw it leave.
 *
 * Needs root (network namespaces); runs everywhere ./run test runs as root.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManagedProcess, NODE, ServiceProcess, mintToken, waitFor } from '@switchboard/devstack';
import { Rooms } from '@switchboard/protocol';
import { TestClient } from './client.ts';
import { sdp, sleep } from './fixtures.ts';
import { startSignaling, type SignalingPlatform } from './platform.ts';

const isRoot = process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
const NS = `sbns${tag}`;
const VETH_HOST = `sbh${tag}`;
const VETH_NS = `sbn${tag}`;
// A /30 of its own per run (10.231.x.y), so parallel runs do not collide.
const subnet = `10.${231 + (parseInt(tag.slice(0, 2), 16) % 8)}.${parseInt(tag.slice(2, 4), 16)}`;
const HOST_IP = `${subnet}.1`;
const NS_IP = `${subnet}.2`;

function sh(...args: string[]): void {
  execFileSync(args[0] ?? '', args.slice(1), { stdio: 'pipe' });
}

const ENDS: [string[], string][] = [
  [[], VETH_HOST],
  [['ip', 'netns', 'exec', NS], VETH_NS],
];

/** Limit both ends of the veth pair to `rate` (each end shapes what it sends). */
function limit(rate: string): void {
  for (const [prefix, dev] of ENDS) {
    sh(
      ...prefix,
      'tc',
      'qdisc',
      'replace',
      'dev',
      dev,
      'root',
      'tbf',
      'rate',
      rate,
      'burst',
      '4kb',
      'latency',
      '5s',
    );
  }
}

/** Lift the limits. */
function unlimit(): void {
  for (const [prefix, dev] of ENDS) {
    try {
      sh(...prefix, 'tc', 'qdisc', 'del', 'dev', dev, 'root');
    } catch {
      // No qdisc there: nothing to lift.
    }
  }
}

/** Take the namespace's end of the link down (nothing gets through) or up again. */
function link(state: 'up' | 'down'): void {
  sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, state);
}

let sp: SignalingPlatform;
let edge: ServiceProcess;
let peer: TestClient;
let client: ManagedProcess | undefined;

describe.skipIf(!isRoot)('signaling under network chaos', () => {
  beforeAll(async () => {
    sh('ip', 'netns', 'add', NS);
    sh('ip', 'link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS);
    sh('ip', 'link', 'set', VETH_NS, 'netns', NS);
    sh('ip', 'addr', 'add', `${HOST_IP}/30`, 'dev', VETH_HOST);
    sh('ip', 'link', 'set', VETH_HOST, 'up');
    sh('ip', 'netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_IP}/30`, 'dev', VETH_NS);
    sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, 'up');
    sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'), {
      RECONNECT_WINDOW_MS: '60000',
    });
    // A gateway on the veth address, with a tight heartbeat.
    edge = await ServiceProcess.start(
      'gateway',
      {
        ...sp.platform.env,
        HTTP_HOST: HOST_IP,
        WS_PING_INTERVAL_MS: '500',
        WS_IDLE_TIMEOUT_MS: '4000',
      },
      { label: 'gateway-edge' },
    );
  });

  afterAll(async () => {
    unlimit();
    await client?.stop('SIGKILL');
    peer.kill();
    await edge.stop();
    await sp.stop();
    try {
      sh('ip', 'netns', 'del', NS); // takes the veth pair with it
    } catch {
      // Already gone.
    }
  });

  it('holds on a slow link, waits through an outage, reconnects after', async () => {
    const roomId = 'room-netem';
    peer = await TestClient.join(sp.gw1.url, roomId, 'peer');
    const bearer = await mintToken({ sub: 'far', rooms: [roomId] });
    client = new ManagedProcess('netns-client', 'ip', [
      'netns',
      'exec',
      NS,
      NODE,
      join(import.meta.dirname, 'netns-client.ts'),
      `ws://${HOST_IP}:${edge.port}/api`,
      bearer,
      roomId,
    ]);
    const joined = JSON.parse(await client.waitForLine(/"t":"joined"/, 15_000)) as {
      socketId: string;
    };
    const far = joined.socketId;
    const answers = (): number => peer.events('eventExchangeSdp').length;
    const offer = async (size = 0): Promise<number> => {
      const before = answers();
      const sent = Date.now();
      const o = sdp('offer', 'x');
      const big = { ...o, sdp: o.sdp + 'a=x-filler:0123456789abcdef\r\n'.repeat(size / 30) };
      expect((await peer.request('exchangeSdp', { to: far, sdp: big })).s).toBe(true);
      await peer.waitFor(() => answers() > before, 15_000, 'the answer');
      return Date.now() - sent;
    };
    expect(await offer()).toBeLessThan(3000);

    // A slow link: 30 KB at 256 kbit/s takes about a second; the socket holds.
    limit('256kbit');
    expect(await offer(30_000)).toBeGreaterThanOrEqual(700);
    await sleep(1000);
    expect(client.output()).not.toMatch(/"t":"(closed|dead)"/);
    unlimit();

    // Nothing gets through: the gateway cuts the socket; the session waits in its window.
    link('down');
    await waitFor(
      'the far session to enter its window',
      async () => {
        const info = await sp.bus.request(Rooms.roomInfo, { roomId });
        return info.sessions.find((s) => s.socketId === far)?.state === 'disconnected';
      },
      { timeoutMs: 15_000 },
    );
    expect(peer.events('eventLeave')).toEqual([]);

    // Back: the client finds its socket dead, reconnects, and relays flow again.
    link('up');
    await client.waitForLine(/"t":"reconnected"/, 20_000);
    const info = await sp.bus.request(Rooms.roomInfo, { roomId });
    expect(info.sessions.map((s) => [s.userId, s.state])).toEqual([
      ['peer', 'active'],
      ['far', 'active'],
    ]);
    expect(await offer()).toBeLessThan(3000);
    expect(peer.events('eventLeave')).toEqual([]);
  });
});
