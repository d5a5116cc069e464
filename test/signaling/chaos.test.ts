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
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManagedProcess, NODE, ServiceProcess, mintToken, waitFor } from '@switchboard/devstack';
import { Rooms } from '@switchboard/protocol';
import { Veth, isRoot } from '../veth.ts';
import { TestClient } from './client.ts';
import { sdp, sleep } from './fixtures.ts';
import { startSignaling, type SignalingPlatform } from './platform.ts';

let veth: Veth | undefined;

/** Limit both ends of the veth pair to `rate` (each end shapes what it sends). */
function limit(rate: string): void {
  veth?.onEachEnd((dev, run) => {
    run([
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
    ]);
  });
}

/** Lift the limits. */
function unlimit(): void {
  veth?.onEachEnd((dev, run) => {
    try {
      run(['tc', 'qdisc', 'del', 'dev', dev, 'root']);
    } catch {
      // No qdisc there: nothing to lift.
    }
  });
}

/** Take the namespace's end of the link down (nothing gets through) or up again. */
function link(state: 'up' | 'down'): void {
  if (veth === undefined) throw new Error('no link');
  veth.inNs(['ip', 'link', 'set', veth.nsDev, state]);
}

let sp: SignalingPlatform;
let edge: ServiceProcess;
let peer: TestClient;
let client: ManagedProcess | undefined;

describe.skipIf(!isRoot)('signaling under network chaos', () => {
  beforeAll(async () => {
    const v = (veth = Veth.create());
    sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'), {
      RECONNECT_WINDOW_MS: '60000',
    });
    // A gateway on the veth address, with a tight heartbeat.
    edge = await ServiceProcess.start(
      'gateway',
      {
        ...sp.platform.env,
        HTTP_HOST: v.hostIp,
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
    veth?.remove();
  });

  it('holds on a slow link, waits through an outage, reconnects after', async () => {
    const roomId = 'room-netem';
    peer = await TestClient.join(sp.gw1.url, roomId, 'peer');
    const bearer = await mintToken({ sub: 'far', rooms: [roomId] });
    if (veth === undefined) throw new Error('no link');
    const [ip = 'ip', ...exec] = veth.exec;
    client = new ManagedProcess('netns-client', ip, [
      ...exec,
      NODE,
      join(import.meta.dirname, 'netns-client.ts'),
      `ws://${veth.hostIp}:${edge.port}/api`,
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
