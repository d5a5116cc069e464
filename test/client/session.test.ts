/**
 * The client SDK (libs/client) in Node 22, on its global WebSocket, against the real
 * platform: the rooms service and two gateways on the real NATS and PostgreSQL. Media needs a
 * browser (test/e2e/demo.test.ts); everything else of a session is here: typed requests with
 * deadlines and cancellation, typed events as listeners and iterators, resuming through the
 * other gateway inside the window, rejoining after it, a gateway that stops answering (read
 * deadline), server-to-client requests on one client and on a whole room, token refresh.
 *
 * A process-wide unhandledRejection handler fails the run: the SDK must never leave one.
 */
import { execFile } from 'node:child_process';
import { join as joinPath } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { callClient, callRoom } from '@switchboard/bus';
import { connect, type ConnectOptions, type Session } from '@switchboard/client';
import { NODE, ROOT, mintToken } from '@switchboard/devstack';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  ProtocolError,
  type ClientStats,
} from '@switchboard/protocol';
import { startSignaling, TIMINGS, type SignalingPlatform } from '../signaling/platform.ts';
import { sleep } from '../signaling/fixtures.ts';

let p: SignalingPlatform;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
const sessions: Session[] = [];
const errors: string[] = [];

const wsUrl = (gw: { url: string }): string => `${gw.url.replace(/^http/, 'ws')}/api`;

/** Fast heartbeats and retries, so drops are seen within a test's time. */
const FAST: Partial<ConnectOptions> = {
  heartbeatIntervalMs: 300,
  readDeadlineGraceMs: 300,
  backoff: { initialMs: 100, maxMs: 500 },
  requestTimeoutMs: 3000,
  connectTimeoutMs: 2000,
};

async function join(
  urls: string | string[],
  room: string,
  user: string,
  extra: Partial<ConnectOptions> = {},
): Promise<Session> {
  const token = await mintToken({ sub: user, rooms: [room] });
  const s = await connect(urls, { room, token, ...FAST, ...extra });
  s.on('error', ({ error, context }) => {
    errors.push(`${user}: ${context}: ${error.message}`);
  });
  sessions.push(s);
  return s;
}

async function waitFor<T>(what: string, f: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  p = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
});

afterEach(async () => {
  await Promise.all(
    sessions.splice(0).map(async (s) => {
      await s.leave();
    }),
  );
  expect(unhandled).toEqual([]);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await p.stop();
});

describe('client SDK sessions', () => {
  it('joins, types requests and events, honours deadlines and cancellation', async () => {
    const a = await join(wsUrl(p.gw1), 'sdk-basic', 'alice');
    const b = await join(wsUrl(p.gw2), 'sdk-basic', 'bob');
    expect(a.state).toBe('connected');
    expect(b.joinReply.sessions).toEqual([{ socketId: a.socketId, userId: 'alice' }]);
    expect(b.joinReply.roomSize).toBe(2);

    // A relay, typed both ways: request in, event out (listener and async iterator).
    const iterated = a.events('eventExchangeSdp')[Symbol.asyncIterator]();
    const heard = a.once('eventExchangeSdp');
    await b.request('exchangeSdp', {
      to: a.socketId,
      sdp: { type: 'offer', sdp: 'v=0\r\n' },
    });
    const ev = await heard;
    expect(ev.from).toEqual({ socketId: b.socketId, userId: 'bob' });
    expect((await iterated.next()).value).toEqual(ev);
    await iterated.return?.();

    // Errors are ProtocolErrors with the gateway's code.
    await expect(
      b.request('exchangeSdp', { to: b.socketId, sdp: { type: 'offer', sdp: 'x' } }),
    ).rejects.toMatchObject({ errorName: 'JSON_FIELD_INVALID' });
    await expect(
      b.request('exchangeCandidate', {
        to: 'f'.repeat(32),
        candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' },
      }),
    ).rejects.toMatchObject({ errorName: 'SOCKET_ID_DOES_NOT_EXIST' });

    // Cancellation and deadlines.
    const ac = new AbortController();
    ac.abort();
    await expect(
      b.request('orientationChange', { orientation: 90, camera: 'front' }, { signal: ac.signal }),
    ).rejects.toMatchObject({ errorName: 'CANCELLED' });
    await expect(
      b.request('orientationChange', { orientation: 90, camera: 'front' }, { timeoutMs: 1 }),
    ).rejects.toMatchObject({ errorName: 'TIMEOUT' });

    // Leaving is seen by the other member.
    const left = a.once('eventLeave');
    await b.leave();
    expect(await left).toMatchObject({ socketId: b.socketId, userId: 'bob', roomSize: 1 });
    expect(b.state).toBe('closed');
    expect(await b.closed).toEqual({ reason: 'left' });
    await expect(
      b.request('orientationChange', { orientation: 0, camera: 'front' }),
    ).rejects.toMatchObject({
      errorName: 'SERVICE_UNAVAILABLE',
    });
  });

  it('refuses what cannot be mended, without retrying', async () => {
    const token = await mintToken({ sub: 'eve', rooms: ['other-room'] });
    await expect(
      connect(wsUrl(p.gw1), { room: 'sdk-refused', token, ...FAST }),
    ).rejects.toMatchObject({
      errorName: 'ROOM_IS_NOT_JOINABLE',
    });
    await expect(
      connect(wsUrl(p.gw1), { room: 'sdk-refused', token: 'not-a-jwt', ...FAST }),
    ).rejects.toMatchObject({ errorName: 'AUTH_FAILED' });
  });

  it('resumes through the other gateway when its gateway dies, inside the window', async () => {
    const gw3 = await p.spawn('gateway', 'gateway-3');
    const a = await join([wsUrl(gw3), wsUrl(p.gw2)], 'sdk-resume', 'alice');
    const b = await join(wsUrl(p.gw1), 'sdk-resume', 'bob');
    const socketId = a.socketId;
    let bSawLeave = false;
    b.on('eventLeave', () => {
      bSawLeave = true;
    });
    const resumed = a.once('resumed');
    await gw3.process.kill();
    const r = await resumed;
    expect(r.socketId).toBe(socketId);
    expect(r.url).toBe(wsUrl(p.gw2));
    expect(r.offlineMs).toBeLessThan(TIMINGS.RECONNECT_WINDOW_MS);
    expect(a.socketId).toBe(socketId);
    expect(a.state).toBe('connected');
    // The session works as before: b relays to a through the gateway it is on now.
    const got = a.once('eventExchangeCandidate');
    await b.request('exchangeCandidate', {
      to: socketId,
      candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' },
    });
    expect((await got).from.socketId).toBe(b.socketId);
    await sleep(TIMINGS.RECONNECT_WINDOW_MS);
    expect(bSawLeave).toBe(false);
  });

  it('takes a silent gateway for dead (read deadline) and rejoins once the window passed', async () => {
    const gw4 = await p.spawn('gateway', 'gateway-4');
    // Its only gateway: while that one is stopped, every try fails (it cannot open a socket).
    const a = await join([wsUrl(gw4)], 'sdk-rejoin', 'alice', {
      backoff: { initialMs: 300, maxMs: 600 },
    });
    const b = await join(wsUrl(p.gw1), 'sdk-rejoin', 'bob');
    const first = a.socketId;
    const disconnected = a.once('disconnected');
    const rejoined = a.once('rejoined');
    // SIGSTOP: the TCP connection stays open, nothing arrives; only the read deadline tells.
    gw4.process.signal('SIGSTOP');
    try {
      const d = await disconnected;
      expect(d.code).toBe(4900);
      // The rooms service takes gateway 4 for dead; alice's window passes; bob sees her leave.
      const leave = await b.once('eventLeave');
      expect(leave.socketId).toBe(first);
    } finally {
      gw4.process.signal('SIGCONT');
    }
    // Back, the gateway opens the next try's socket: the session is gone, so alice joins anew.
    const r = await rejoined;
    expect(r.previousSocketId).toBe(first);
    expect(r.socketId).not.toBe(first);
    expect(a.socketId).toBe(r.socketId);
    expect(r.join.sessions).toEqual([{ socketId: b.socketId, userId: 'bob' }]);
    // Requests made while it was away waited for the new connection.
    await a.request('orientationChange', { orientation: 180, camera: 'back' });
  });

  it('answers server-to-client requests, on one client and on a whole room', async () => {
    const a = await join(wsUrl(p.gw1), 'sdk-calls', 'alice');
    const b = await join(wsUrl(p.gw2), 'sdk-calls', 'bob');
    const stats: ClientStats = {
      at: Date.now(),
      transports: [],
      producers: [],
      consumers: [],
      sendBitrate: 0,
      recvBitrate: 0,
      packetsLost: 0,
    };
    a.handle('getClientStats', () => stats);
    let cancelled: unknown;
    b.handle('getClientStats', async (_d, { signal }) => {
      await new Promise((resolve) => {
        signal.addEventListener('abort', resolve, { once: true });
      });
      cancelled = signal.reason;
      throw signal.reason;
    });
    a.handle('requestMute', ({ source }) => ({ muted: source === 'microphone' }));
    b.handle('requestMute', () => {
      throw new ProtocolError('MEDIA_NOT_FOUND', 'nothing to mute');
    });

    const target = { roomId: 'sdk-calls', socketId: a.socketId };
    expect(await callClient(p.bus, target, 'getClientStats', {})).toEqual(stats);
    expect(await callClient(p.bus, target, 'requestMute', { source: 'microphone' })).toEqual({
      muted: true,
    });
    // b never answers getClientStats: TIMEOUT for the caller, and b's handler is aborted.
    await expect(
      callClient(
        p.bus,
        { roomId: 'sdk-calls', socketId: b.socketId },
        'getClientStats',
        {},
        {
          timeoutMs: 500,
        },
      ),
    ).rejects.toMatchObject({ errorName: 'TIMEOUT' });
    await waitFor('the cancel to reach b', () => cancelled);
    // By the gateway's eventRequestCancelled, or by b's own timer at the same deadline.
    expect(['CANCELLED', 'TIMEOUT']).toContain((cancelled as ProtocolError).errorName);
    // A socketId in another room is not reached.
    await expect(
      callClient(p.bus, { roomId: 'elsewhere', socketId: a.socketId }, 'getClientStats', {}),
    ).rejects.toMatchObject({ errorName: 'SOCKET_ID_DOES_NOT_EXIST' });

    // The whole room: every member's own outcome.
    const all = await callRoom(p.bus, 'sdk-calls', 'requestMute', { source: 'microphone' });
    const byUser = Object.fromEntries(
      all.map((r) => [r.userId, r.ok ? r.reply : r.error.errorName]),
    );
    expect(byUser).toEqual({ alice: { muted: true }, bob: 'MEDIA_NOT_FOUND' });

    // The operator's command does the same, through the server API.
    const api = await p.spawn('api', 'api-admin');
    let stdout: string;
    try {
      ({ stdout } = await promisify(execFile)(
        NODE,
        [
          joinPath(ROOT, 'services/rooms/src/admin.ts'),
          'call',
          'sdk-calls',
          'requestMute',
          '{"source":"microphone"}',
        ],
        {
          env: {
            ...process.env,
            SWITCHBOARD_API_URL: api.url,
            SWITCHBOARD_API_KEY: DEV_API_KEY,
            SWITCHBOARD_API_SECRET: DEV_API_SECRET,
          },
        },
      ));
    } finally {
      await api.stop();
    }
    const printed = JSON.parse(stdout) as { userId: string; ok: boolean }[];
    expect(printed.map((r) => [r.userId, r.ok]).sort()).toEqual([
      ['alice', true],
      ['bob', false],
    ]);

    // A method the client registered no handler for.
    const c = await join(wsUrl(p.gw1), 'sdk-calls', 'carol');
    await expect(
      callClient(p.bus, { roomId: 'sdk-calls', socketId: c.socketId }, 'requestMute', {
        source: 'camera',
      }),
    ).rejects.toMatchObject({ errorName: 'UNKNOWN_ACTION' });
  });

  it('refreshes its token before it expires', async () => {
    let refreshes = 0;
    const a = await join([wsUrl(p.gw1)], 'sdk-token', 'alice', {
      token: await mintToken({ sub: 'alice', rooms: ['sdk-token'], expiresInS: 4 }),
      tokenRefreshMarginMs: 2000,
      refreshToken: async () => {
        refreshes++;
        return await mintToken({ sub: 'alice', rooms: ['sdk-token'], expiresInS: 60 });
      },
    });
    const first = a.token;
    const refreshed = await a.once('token');
    expect(refreshes).toBe(1);
    expect(a.token).not.toBe(first);
    expect(refreshed.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    expect(errors).toEqual([]);
  });
});
