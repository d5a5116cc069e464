/**
 * The scripted gateway of the SDK's unit tests under fake timers (reconnect, token refresh,
 * event batches): a fake WebSocket that opens or fails as the test says, answers join,
 * reconnect (spending the session's resume token and taking the proposed next one),
 * refreshToken and ping, keeps what the client sent, and drops or sends frames on demand.
 * `useScriptedGateway()` gives each test of a file fake time and a new gateway in `gw`;
 * `connected(opts())` joins through it.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import type { Session } from '@switchboard/client';
import { connect, type ConnectOptions, type WebSocketLike } from '@switchboard/client';
import { ErrorCodes } from '@switchboard/protocol';

export const SOCKET_ID = 'a'.repeat(32);
/** The fake gateway's nth resume token (43 base64url characters). */
export const resume = (n: number): string => `r${String(n)}`.padEnd(43, '_');

/** A JWT-shaped token with `exp` (unsigned: the client never verifies). */
export function token(expSeconds: number): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', exp: expSeconds })}.sig`;
}

/** A scripted gateway: `up` decides whether sockets open; join/reconnect/ping are answered. */
export class FakeGateway {
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

export class FakeSocket implements WebSocketLike {
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

/** The current test's gateway (a new one for each: useScriptedGateway). */
export let gw: FakeGateway;
/** A session's options through `gw`: 1 s heartbeats, backoff from 100 ms to 1 s, random → 0. */
export const opts = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
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

/** For each test of the calling file: fake time from 2026-12-01T12:00:00Z and a new `gw`. */
export function useScriptedGateway(): void {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-01T12:00:00Z') });
    gw = new FakeGateway();
  });

  afterEach(() => {
    vi.useRealTimers();
  });
}

/** A session joined through `gw` (gw-a, then gw-b in turn) with options `o`. */
export async function connected(o: ConnectOptions): Promise<Session> {
  const p = connect(['ws://gw-a/api', 'ws://gw-b/api'], o);
  await vi.advanceTimersByTimeAsync(10);
  return await p;
}
