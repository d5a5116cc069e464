/**
 * A gateway cut off from NATS (through a TCP proxy this test can cut): the rooms service
 * takes it for dead. Back within the reconnect window, its sessions are active again and
 * peers never saw them leave; back after the window, the sessions are gone and their
 * sockets are closed with 4002 so the clients join again.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Rooms } from '@switchboard/protocol';
import { waitFor, type ServiceProcess } from '@switchboard/devstack';
import { sdp, sleep } from './fixtures.ts';
import { TestClient } from './client.ts';
import type { CuttableProxy } from './proxy.ts';
import { TIMINGS, startSignaling, useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
let proxy: CuttableProxy;
let gw3: ServiceProcess;
const open: TestClient[] = [];

useSignaling(open, async (p) => {
  sp = p;
  ({ service: gw3, proxy } = await sp.spawnCuttable('gateway', 'gateway-cut'));
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

  it("the room's broadcasts it missed: back, its members get the room as it is now", async () => {
    const a = await TestClient.join(sp.gw1.url, 'room-cut-missed', 'near');
    const b = await TestClient.join(gw3.url, 'room-cut-missed', 'far');
    const c = await TestClient.join(sp.gw1.url, 'room-cut-missed', 'gone');
    open.push(a, b, c);
    await b.event('eventJoin');
    await proxy.cut();
    // Both broadcasts are lost for the cut-off gateway.
    c.close(1000);
    await a.event('eventLeave');
    const d = await TestClient.join(sp.gw1.url, 'room-cut-missed', 'new', { name: 'Newcomer' });
    open.push(d);
    await a.waitFor(
      (f) => f.a === 'eventJoin' && (f.d as { socketId?: string }).socketId === d.socketId,
    );
    await proxy.restore();
    const state = await b.event('eventRoomState', 15_000);
    expect(state.d).toEqual({
      roomId: 'room-cut-missed',
      roomSize: 3,
      sessions: [
        { socketId: a.socketId, userId: 'near' },
        { socketId: d.socketId, userId: 'new', name: 'Newcomer' },
      ],
      complete: true,
      userMediaConfiguration: expect.any(Object) as unknown,
    });
    // The members of the gateways that missed nothing get none.
    expect(a.events('eventRoomState')).toEqual([]);
    // Broadcasts go on as before.
    d.close(1000);
    expect((await b.event('eventLeave')).d).toMatchObject({ socketId: d.socketId, roomSize: 2 });
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

describe('the rooms service cut off from NATS', () => {
  let own: SignalingPlatform;
  let roomsProxy: CuttableProxy;
  let rooms: ServiceProcess;

  beforeAll(async () => {
    own = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
    // The only rooms replica talks to NATS through a proxy this test can cut.
    expect(await own.platform.get('rooms').stop()).toBe(0);
    ({ service: rooms, proxy: roomsProxy } = await own.spawnCuttable('rooms', 'rooms-cut'));
  });

  afterAll(async () => {
    await own.stop();
  });

  it('does not take the gateways for dead when it is back: their heartbeats were only missed', async () => {
    const a = await TestClient.join(own.gw1.url, 'room-rooms-cut', 'one');
    const b = await TestClient.join(own.gw2.url, 'room-rooms-cut', 'two');
    open.push(a, b);
    await roomsProxy.cut();
    await sleep(TIMINGS.GATEWAY_DEAD_AFTER_MS + 1500);
    await roomsProxy.restore();
    await waitFor('rooms back on NATS', async () => (await rooms.readyz()).status === 200, {
      timeoutMs: 10_000,
    });
    await sleep(TIMINGS.GATEWAY_DEAD_AFTER_MS + TIMINGS.RECONNECT_WINDOW_MS + 1000);
    expect(a.events('eventLeave')).toEqual([]);
    expect(b.events('eventLeave')).toEqual([]);
    const info = await own.bus.request(Rooms.roomInfo, { roomId: 'room-rooms-cut' });
    expect(info.sessions.map((s) => s.state)).toEqual(['active', 'active']);
    expect((await a.request('exchangeSdp', { to: b.socketId, sdp: sdp('offer', 'x') })).s).toBe(
      true,
    );
    a.close();
    b.close();
    // Their leaves reach the rooms service before it stops (else the gateways would keep
    // retrying them until their own shutdown deadline).
    await waitFor(
      'the room to empty',
      async () =>
        (await own.bus.request(Rooms.roomInfo, { roomId: 'room-rooms-cut' })).roomSize === 0,
      { timeoutMs: 10_000 },
    );
  });
});
