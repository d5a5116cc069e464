/**
 * The SDK's reconnect policies under fake timers: backoff and jitter, the reconnect schedule,
 * the read deadline of a silent connection, dormancy and waking from it, resuming with the
 * latest resume token and joining again when a resume is refused. The gateway is a scripted
 * fake WebSocket here (./scripted-socket.ts) — these are unit tests of timing;
 * test/client/session.test.ts runs the same SDK against the real platform.
 */
import { describe, expect, it, vi } from 'vitest';
import { backoffDelay } from '@switchboard/client';
import { ErrorCodes } from '@switchboard/protocol';
import { SOCKET_ID, connected, gw, opts, resume, useScriptedGateway } from './scripted-socket.ts';

useScriptedGateway();

describe('backoff and jitter', () => {
  it('doubles up to the cap; jitter takes at most its share off', () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect([0, 1, 2, 3, 4, 5, 60].map((n) => backoffDelay(n, o, () => 0))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
    // random → 1: half of each delay (jitter 0.5), never less.
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, o, () => 0.999999))).toEqual([
      50, 100, 200, 400,
    ]);
    // Full jitter spreads over [0, d]; no jitter is exact.
    expect(backoffDelay(3, { ...o, jitter: 1 }, () => 0.75)).toBe(200);
    expect(backoffDelay(3, { ...o, jitter: 0 }, () => 0.75)).toBe(800);
    // Many clients dropped together spread out.
    const spread = new Set(Array.from({ length: 200 }, () => backoffDelay(4, o)));
    expect(spread.size).toBeGreaterThan(100);
    for (const d of spread) expect(d).toBeGreaterThanOrEqual(500);
    expect(() => backoffDelay(-1, o)).toThrow(RangeError);
  });

  it('reconnects on that schedule, rotating through the gateways', async () => {
    const s = await connected(opts());
    const retries: number[] = [];
    s.on('retrying', ({ retryInMs }) => {
      retries.push(retryInMs);
    });
    gw.up = false;
    const droppedAt = Date.now();
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(4000);
    const attempts = gw.opened.slice(1).map((o) => o.at - droppedAt);
    // Immediately, then 100, 200, 400, 800, 1000, 1000… after each failure (+1 ms per open).
    expect(retries.slice(0, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
    expect(gaps.slice(0, 5)).toEqual([101, 201, 401, 801, 1001]);
    // After a drop the other gateway first, then in turn.
    expect(gw.opened.slice(0, 4).map((o) => o.url)).toEqual([
      'ws://gw-a/api',
      'ws://gw-b/api',
      'ws://gw-a/api',
      'ws://gw-b/api',
    ]);
    expect(s.state).toBe('reconnecting');
    gw.up = true;
    const resumed = s.once('resumed');
    await vi.advanceTimersByTimeAsync(1100);
    expect((await resumed).socketId).toBe(SOCKET_ID);
    expect(s.state).toBe('connected');
    await s.leave();
  });

  it('takes a silent connection for dead after 2 × heartbeat + grace', async () => {
    const s = await connected(opts());
    const sock = gw.current;
    if (sock === undefined) throw new Error('no socket');
    // The gateway stops answering (pings included), the socket stays open.
    sock.send = () => undefined;
    const lost = s.once('disconnected');
    const t0 = Date.now();
    let lostAt = 0;
    void lost.then(() => {
      lostAt = Date.now();
    });
    await vi.advanceTimersByTimeAsync(4000);
    const d = await lost;
    expect(d.code).toBe(4900);
    // The last frame came at about t0; the deadline is 2500 ms, checked every 625 ms.
    expect(lostAt - t0).toBeGreaterThan(2500);
    expect(lostAt - t0).toBeLessThanOrEqual(2500 + 625);
    await vi.advanceTimersByTimeAsync(100);
    expect(s.state).toBe('connected');
    await s.leave();
  });
});

describe('dormancy', () => {
  it('stops retrying after dormancyAfterMs of failures, until activity()', async () => {
    const s = await connected(opts({ dormancyAfterMs: 5000 }));
    gw.up = false;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(6000);
    expect(s.state).toBe('dormant');
    const before = gw.opened.length;
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(gw.opened.length).toBe(before); // asleep: not one try in 10 minutes
    gw.up = true;
    s.activity();
    await vi.advanceTimersByTimeAsync(10);
    expect(gw.opened.length).toBe(before + 1);
    expect(s.state).toBe('connected');
    await s.leave();
  });

  it('wakes on the browser reporting it is online again', async () => {
    const target = new EventTarget();
    vi.stubGlobal('addEventListener', target.addEventListener.bind(target));
    vi.stubGlobal('removeEventListener', target.removeEventListener.bind(target));
    try {
      const s = await connected(opts({ dormancyAfterMs: 1000 }));
      gw.up = false;
      gw.current?.drop();
      await vi.advanceTimersByTimeAsync(3000);
      expect(s.state).toBe('dormant');
      gw.up = true;
      target.dispatchEvent(new Event('online'));
      await vi.advanceTimersByTimeAsync(10);
      expect(s.state).toBe('connected');
      await s.leave();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('joins again when the window has passed, and closes for good on a refusal', async () => {
    const s = await connected(opts());
    gw.reconnect = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;
    const rejoined = s.once('rejoined');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect((await rejoined).previousSocketId).toBe(SOCKET_ID);
    gw.joinError = ErrorCodes.ROOM_IS_FULL.code;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect(await s.closed).toMatchObject({
      reason: 'refused',
      error: { errorName: 'ROOM_IS_FULL' },
    });
  });

  it('resumes with the latest resumeToken: each reconnect spends one and proposes the next', async () => {
    const s = await connected(opts());
    for (let i = 0; i < 3; i++) {
      const resumed = s.once('resumed');
      gw.current?.drop();
      await vi.advanceTimersByTimeAsync(50);
      await resumed;
    }
    const sent = gw.reconnects;
    expect(sent.map((d) => d['resumeToken'])).toEqual([
      resume(1),
      sent[0]?.['nextResumeToken'],
      sent[1]?.['nextResumeToken'],
    ]);
    const proposals = new Set(sent.map((d) => d['nextResumeToken']));
    expect(proposals.size).toBe(3);
    for (const p of proposals) expect(p).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sent.every((d) => d['socketId'] === SOCKET_ID && !('bearer' in d))).toBe(true);
    await s.leave();
  });

  it('a reconnect whose reply was lost: the next one tries the proposed token and resumes', async () => {
    const s = await connected(opts());
    gw.loseNextReply = true;
    const resumed = s.once('resumed');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(2000);
    await resumed;
    expect(gw.joins).toHaveLength(1); // no rejoin
    const [lost, next] = gw.reconnects;
    expect(lost?.['resumeToken']).toBe(resume(1));
    expect(next?.['resumeToken']).toBe(lost?.['nextResumeToken']);
    await s.leave();
  });

  it('joins again when a resume is refused (AUTH_FAILED)', async () => {
    const s = await connected(opts());
    gw.reconnect = ErrorCodes.AUTH_FAILED.code;
    const rejoined = s.once('rejoined');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    await rejoined;
    expect(gw.joins).toHaveLength(2);
    expect(s.state).toBe('connected');
    await s.leave();
  });

  it('ends with 4001 (taken over elsewhere) without reconnecting', async () => {
    const s = await connected(opts());
    const n = gw.opened.length;
    gw.current?.drop(4001);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await s.closed).toMatchObject({ reason: 'replaced' });
    expect(gw.opened.length).toBe(n);
  });
});
