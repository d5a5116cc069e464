/**
 * Resource limits of a connection: a socket that never joins is closed after
 * WS_JOIN_TIMEOUT_MS; a client that stops reading while its room talks is cut off once
 * WS_MAX_BUFFERED_BYTES wait for it — its session waits in the reconnect window, and the
 * talker is not held up.
 */
import { describe, expect, it } from 'vitest';
import { ServiceProcess, waitFor } from '@switchboard/devstack';
import { Rooms } from '@switchboard/protocol';
import { TestClient, type Frame } from './client.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];

useSignaling(
  open,
  (p) => {
    sp = p;
  },
  {
    WS_JOIN_TIMEOUT_MS: '1500',
    WS_MAX_BUFFERED_BYTES: '65536',
    WS_RATE_LIMIT_PER_S: '100000',
    WS_RATE_LIMIT_BURST: '100000',
    // Long enough that no session expires while a test looks at it.
    RECONNECT_WINDOW_MS: '60000',
  },
);

describe('connection limits', () => {
  it('a socket that never joins is closed with 1008', async () => {
    const idle = await TestClient.connect(sp.gw1.url);
    open.push(idle);
    const started = Date.now();
    // Talking is not joining: an unknown action does not keep it open.
    expect((await idle.request('fly')).e).toBe(0x510);
    expect(await idle.closed).toEqual({ code: 1008, reason: 'join or reconnect first' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    // One that joins in time stays.
    const c = await TestClient.join(sp.gw1.url, 'room-limits', 'in-time');
    open.push(c);
    await new Promise((r) => setTimeout(r, 2000));
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    c.close();
  });

  it('a full gateway is not ready and closes new sockets with 1013', async () => {
    const small = await ServiceProcess.start(
      'gateway',
      { ...sp.platform.env, WS_MAX_CONNECTIONS: '2' },
      { label: 'gateway-small' },
    );
    try {
      await small.waitReady();
      const first = await TestClient.connect(small.url);
      const second = await TestClient.connect(small.url);
      open.push(first, second);
      await waitFor(
        'the full gateway to report not ready',
        async () => (await small.readyz()).status === 503,
        {
          timeoutMs: 5000,
        },
      );
      expect((await small.readyz()).body).toMatchObject({ checks: { capacity: 'failing' } });
      const third = await TestClient.connect(small.url);
      open.push(third);
      expect(await third.closed).toEqual({ code: 1013, reason: 'gateway full' });
      // The ones it holds work as ever; when one goes, it is ready again.
      expect((await first.request('fly')).e).toBe(0x510);
      second.close();
      await waitFor(
        'the gateway to be ready again',
        async () => (await small.readyz()).status === 200,
        {
          timeoutMs: 5000,
        },
      );
    } finally {
      await small.stop();
    }
  });

  it('a client that stops reading is cut off; its session waits; the sender goes on', async () => {
    const talker = await TestClient.join(sp.gw1.url, 'room-slow', 'talker');
    const reader = await TestClient.join(sp.gw2.url, 'room-slow', 'reader');
    const other = await TestClient.join(sp.gw2.url, 'room-slow', 'other');
    open.push(talker, reader, other);
    reader.ws.pause(); // reads nothing more: the kernel buffers fill, then the gateway's
    // About 56 KB as JSON, under the 64 KiB frame limit.
    const big = { type: 'offer' as const, sdp: `v=0\r\n${'a=x-filler\r\n'.repeat(4000)}` };
    let failed: Frame | undefined;
    for (let i = 0; i < 600 && failed === undefined; i++) {
      const r = await talker.request('exchangeSdp', { to: reader.socketId, sdp: big });
      if (r.s !== true) failed = r;
    }
    // Its socket is gone (the session is not: it waits in its window).
    expect(failed, JSON.stringify(failed)).toMatchObject({ s: false, e: 0x512 });

    // The gateway tells the rooms service right after it cut the socket.
    await waitFor(
      "the reader's session to enter its window",
      async () => {
        const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-slow' });
        return info.sessions.find((s) => s.socketId === reader.socketId)?.state === 'disconnected';
      },
      { timeoutMs: 10_000 },
    );
    // Everyone else carries on.
    expect((await talker.request('exchangeSdp', { to: other.socketId, sdp: big })).s).toBe(true);
    await other.event('eventExchangeSdp');
    talker.close();
    other.close();
  });
});
