/**
 * The SDK's timing policies under fake timers: backoff and jitter, the reconnect schedule,
 * dormancy and waking from it, token refresh and its retries; and how an eventBatch reaches
 * listeners. The gateway is a scripted fake WebSocket here — these are unit tests of timing;
 * test/client/session.test.ts runs the same SDK against the real platform.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Session } from '@switchboard/client';
import {
  backoffDelay,
  connect,
  refreshAt,
  tokenExpiry,
  type ConnectOptions,
  type WebSocketLike,
} from '@switchboard/client';
import { ErrorCodes } from '@switchboard/protocol';

const SOCKET_ID = 'a'.repeat(32);
/** The fake gateway's nth resume token (43 base64url characters). */
const resume = (n: number): string => `r${String(n)}`.padEnd(43, '_');

/** A JWT-shaped token with `exp` (unsigned: the client never verifies). */
function token(expSeconds: number): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', exp: expSeconds })}.sig`;
}

/** A scripted gateway: `up` decides whether sockets open; join/reconnect/ping are answered. */
class FakeGateway {
  up = true;
  /** What `reconnect` answers: true = resumed, else the error code. */
  reconnect: true | number = true;
  joinError: number | undefined;
  opened: { at: number; url: string }[] = [];
  sockets: FakeSocket[] = [];
  joins: string[] = [];
  /** Every join's `d`. */
  joinData: Record<string, unknown>[] = [];
  /** Every reconnect's `d`, and every refreshToken's bearer. */
  reconnects: Record<string, unknown>[] = [];
  refreshes: string[] = [];
  /** The session's resume token now (as a rooms service keeps it). */
  resumeToken: string | undefined;
  /** Take the next reconnect (rotate the token) but drop the connection before the reply. */
  loseNextReply = false;
  #issued = 0;
  nextResume(): string {
    return resume(++this.#issued);
  }

  factory = (url: string): WebSocketLike => {
    this.opened.push({ at: Date.now(), url });
    const s = new FakeSocket(this);
    this.sockets.push(s);
    setTimeout(() => {
      if (this.up) s.open();
      else s.fail();
    }, 1);
    return s;
  };

  get current(): FakeSocket | undefined {
    return this.sockets.at(-1);
  }
}

class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly #gw: FakeGateway;

  constructor(gw: FakeGateway) {
    this.#gw = gw;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  fail(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: '' });
  }

  /** The gateway drops the connection. */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: 'dropped' });
  }

  send(data: string): void {
    const f = JSON.parse(data) as { a: string; d: Record<string, unknown>; id: number };
    const reply = (d: unknown): void => {
      setTimeout(
        () => this.onmessage?.({ data: JSON.stringify({ a: `${f.a}R`, s: true, d, id: f.id }) }),
        1,
      );
    };
    const error = (e: number): void => {
      setTimeout(
        () => this.onmessage?.({ data: JSON.stringify({ a: `${f.a}R`, s: false, e, id: f.id }) }),
        1,
      );
    };
    switch (f.a) {
      case 'join':
        this.#gw.joins.push(String(f.d['bearer']));
        this.#gw.joinData.push(f.d);
        if (this.#gw.joinError !== undefined) {
          error(this.#gw.joinError);
          return;
        }
        reply({
          socketId: SOCKET_ID,
          roomSize: 1,
          userMediaConfiguration: {
            audio: true,
            video: { width: { max: 640 }, height: { max: 360 }, frameRate: { max: 24 } },
          },
          sessions: [],
          resumeToken: (this.#gw.resumeToken = this.#gw.nextResume()),
        });
        return;
      case 'reconnect': {
        this.#gw.reconnects.push(f.d);
        if (this.#gw.reconnect !== true) {
          error(this.#gw.reconnect);
          return;
        }
        if (f.d['resumeToken'] !== this.#gw.resumeToken) {
          error(ErrorCodes.AUTH_FAILED.code);
          return;
        }
        const proposed = f.d['nextResumeToken'];
        this.#gw.resumeToken = typeof proposed === 'string' ? proposed : this.#gw.nextResume();
        if (this.#gw.loseNextReply) {
          this.#gw.loseNextReply = false;
          setTimeout(() => {
            this.drop();
          }, 1);
          return;
        }
        reply({ roomSize: 1, resumeToken: this.#gw.resumeToken });
        return;
      }
      case 'refreshToken':
        this.#gw.refreshes.push(String(f.d['bearer']));
        reply({ expiresAt: Date.now() + 3_600_000 });
        return;
      case 'ping':
        reply({ now: Date.now() });
        return;
      default:
        error(ErrorCodes.UNKNOWN_ACTION.code);
    }
  }

  /** A frame from the gateway (an event). */
  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  close(code = 1005): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    // The close event comes later, as with a real socket (a microtask: not under fake time).
    queueMicrotask(() => this.onclose?.({ code, reason: '' }));
  }
}

let gw: FakeGateway;
const opts = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  room: 'r',
  token: token(Math.floor(Date.now() / 1000) + 3600),
  WebSocket: gw.factory,
  heartbeatIntervalMs: 1000,
  readDeadlineGraceMs: 500,
  backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
  random: () => 0,
  onError: () => undefined,
  ...extra,
});

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-12-01T12:00:00Z') });
  gw = new FakeGateway();
});

afterEach(() => {
  vi.useRealTimers();
});

async function connected(o: ConnectOptions): Promise<Session> {
  const p = connect(['ws://gw-a/api', 'ws://gw-b/api'], o);
  await vi.advanceTimersByTimeAsync(10);
  return await p;
}

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

describe('token refresh', () => {
  it('reads exp, and refreshes a margin before it (not before half of a short life)', () => {
    expect(tokenExpiry(token(1_800_000_000))).toBe(1_800_000_000_000);
    expect(tokenExpiry('opaque')).toBeUndefined();
    expect(refreshAt(100_000, 0, 10_000)).toBe(90_000);
    expect(refreshAt(40_000, 0, 60_000)).toBe(20_000);
    // The server's clock is 5 s ahead: its expiry comes 5 s earlier here.
    expect(refreshAt(100_000, 0, 10_000, 5000)).toBe(85_000);
  });

  it('refreshes before expiry, retries a failed refresh with backoff, rejoins with the new token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const calls: number[] = [];
    const errors: string[] = [];
    let fail = 1;
    const s = await connected(
      opts({
        token: token(now + 120),
        tokenRefreshMarginMs: 60_000,
        onError: (e) => errors.push(e.message),
        refreshToken: async () => {
          calls.push(Date.now());
          if (fail-- > 0) throw new Error('backend down');
          return token(Math.floor(Date.now() / 1000) + 120);
        },
      }),
    );
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(59_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(2000);
    // At exp − margin; the failure is reported and retried after the backoff (100 ms).
    expect(calls.map((c) => c - t0)).toEqual([
      expect.closeTo(60_000, -2),
      expect.closeTo(60_100, -2),
    ]);
    expect(errors).toEqual(['backend down']);
    const fresh = s.token;
    expect(tokenExpiry(fresh)).toBeGreaterThan(Date.now() + 100_000);
    // The next refresh is scheduled from the new token's expiry.
    await vi.advanceTimersByTimeAsync(61_000);
    expect(calls).toHaveLength(3);
    // A rejoin presents the token of the moment.
    gw.reconnect = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect(gw.joins.at(-1)).toBe(s.token);
    expect(gw.joins.at(-1)).not.toBe(gw.joins[0]);
    await s.leave();
  });

  it('presents a refreshed token to the server, or with the next reconnect when offline', async () => {
    let n = 0;
    const fresh = (): string => token(Math.floor(Date.now() / 1000) + 120 + ++n);
    const s = await connected(
      opts({
        token: token(Math.floor(Date.now() / 1000) + 120),
        tokenRefreshMarginMs: 60_000,
        refreshToken: async () => fresh(),
      }),
    );
    // Connected at exp − margin: refreshToken {bearer} goes to the gateway.
    await vi.advanceTimersByTimeAsync(61_000);
    expect(gw.refreshes).toEqual([s.token]);
    expect(gw.reconnects).toEqual([]);
    // The next refresh falls while the gateway is away: the reconnect carries the token.
    await vi.advanceTimersByTimeAsync(58_000);
    gw.up = false;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(4000);
    expect(s.state).not.toBe('connected');
    expect(gw.refreshes).toHaveLength(1);
    gw.up = true;
    await vi.advanceTimersByTimeAsync(2000);
    expect(s.state).toBe('connected');
    expect(gw.reconnects.at(-1)?.['bearer']).toBe(s.token);
    // Only once: the next resume has nothing new to present.
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect(gw.reconnects.at(-1)?.['bearer']).toBeUndefined();
    await s.leave();
  });

  it('refreshes and retries once when a rejoin is refused with AUTH_FAILED', async () => {
    let refreshed = 0;
    const s = await connected(
      opts({
        refreshToken: async () => {
          refreshed++;
          gw.joinError = undefined;
          return token(Math.floor(Date.now() / 1000) + 3600);
        },
      }),
    );
    gw.reconnect = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;
    gw.joinError = ErrorCodes.AUTH_FAILED.code;
    const rejoined = s.once('rejoined');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    await rejoined;
    expect(refreshed).toBe(1);
    expect(s.state).toBe('connected');
    await s.leave();
  });
});

describe('event batches', () => {
  const peer = (n: number) => ({ socketId: String(n).repeat(32), userId: `u${String(n)}` });
  const joined = (n: number) => ({
    a: 'eventJoin',
    d: { roomId: 'r', roomSize: n + 1, ...peer(n) },
  });

  it('are asked for on join and on every reconnect', async () => {
    const s = await connected(opts());
    expect(gw.joinData.map((d) => d['batchEvents'])).toEqual([true]);
    const resumed = s.once('resumed');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    await resumed;
    expect(gw.reconnects.map((d) => d['batchEvents'])).toEqual([true]);
    await s.leave();
  });

  it('hand out their events in order, as if each had come alone; a bad one is reported alone', async () => {
    const errors: string[] = [];
    const s = await connected(opts({ onError: (e) => errors.push(e.message) }));
    const got: string[] = [];
    s.on('eventJoin', (d) => {
      got.push(`join ${d.userId} ${String(d.roomSize)}`);
    });
    s.on('eventLeave', (d) => {
      got.push(`leave ${d.userId} ${String(d.roomSize)}`);
    });
    gw.current?.receive(joined(1));
    gw.current?.receive({
      a: 'eventBatch',
      d: [
        joined(2),
        { a: 'eventLeave', d: { roomId: 'r', roomSize: 2, ...peer(1) } },
        { a: 'eventJoin', d: { roomId: 'r' } },
        joined(3),
      ],
    });
    gw.current?.receive(joined(4));
    expect(got).toEqual(['join u1 2', 'join u2 3', 'leave u1 2', 'join u3 4', 'join u4 5']);
    expect(errors).toHaveLength(1);
    // A batch in a batch is not one.
    gw.current?.receive({ a: 'eventBatch', d: [{ a: 'eventBatch', d: [joined(5)] }] });
    expect(got).toHaveLength(5);
    expect(errors).toHaveLength(2);
    await s.leave();
  });
});
