/**
 * Frame dispatch on its own (signaling/dispatch.ts): one client's frames, read and answered,
 * against hand-written fakes of what it talks to — the connection's handlers (FakeHandlers,
 * standing in for actions.ts: each request waits until the test settles it), its socket (the
 * replies sent, the closes asked for) and its server requests (where a `sid` reply goes).
 * test/signaling/bad-input.test.ts runs the real thing in real gateways; this checks the
 * rules frame by frame, and that a join's reply goes out before the events held meanwhile.
 */
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  CloseCodes,
  ErrorCodes,
  ProtocolError,
  type ClientAction,
  type MediaAction,
  type ReplyFrame,
  type RequestId,
} from '@switchboard/protocol';
import { Counter, Histogram } from '@switchboard/service';
import { Dispatch, type Handlers } from '../src/signaling/dispatch.ts';

interface Run {
  action: ClientAction | MediaAction;
  data: unknown;
  id: RequestId | undefined;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A fake of the connection's handlers (actions.ts): it records, and answers when told. */
class FakeHandlers implements Handlers {
  readonly runs: Run[] = [];
  readonly notified: { kind: string; data: unknown }[] = [];
  /** Notifications are refused with this, when set. */
  refuse: ProtocolError | undefined;
  /** Runs inside `run`, before it returns (a join begins there, as the connection's does). */
  onRun: ((action: string) => void) | undefined;

  run(action: ClientAction | MediaAction, data: unknown, id: RequestId | undefined) {
    return new Promise<unknown>((resolve, reject) => {
      this.runs.push({ action, data, id, resolve, reject });
      this.onRun?.(action);
    });
  }

  notify(kind: 'eventCpu' | 'eventFreeze', data: unknown): void {
    this.notified.push({ kind, data });
    if (this.refuse !== undefined) throw this.refuse;
  }

  /** The request run `n`-th (from 0). */
  at(n: number): Run {
    const r = this.runs[n];
    if (r === undefined) throw new Error(`no request ${String(n)}`);
    return r;
  }
}

let handlers: FakeHandlers;
/** What the fake socket saw, in order: replies sent (`<a> <code or ok>`) and releases. */
let seen: string[];
let sent: ReplyFrame[];
let closed: [number, string][];
let replies: unknown[];
let joining: boolean;
let requests: Counter;
let rejected: Counter;

function dispatch(limits: Partial<{ ratePerS: number; burst: number; maxInflight: number }> = {}) {
  return new Dispatch({
    limits: { ratePerS: 1000, burst: 1000, maxInflight: 8, ...limits },
    metrics: {
      frames: new Counter({ name: 'f', help: 'f', registers: [] }),
      rejected,
      requests,
      duration: new Histogram({ name: 'd', help: 'd', labelNames: ['action'], registers: [] }),
    },
    log: pino({ level: 'silent' }),
    handlers,
    replies: { reply: (raw) => replies.push(raw) },
    send: (frame) => {
      sent.push(frame);
      seen.push(`${frame.a} ${frame.s ? 'ok' : `0x${frame.e.toString(16)}`}`);
    },
    close: (code, reason) => closed.push([code, reason]),
    joining: () => joining,
    release: () => seen.push('release'),
  });
}

const json = (frame: unknown): string => JSON.stringify(frame);
/** Let the answers of settled requests go out. */
const answered = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const code = (name: keyof typeof ErrorCodes): number => ErrorCodes[name].code;

async function count(c: Counter, labels: Record<string, string>): Promise<number> {
  const values = (await c.get()).values;
  const hit = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return hit?.value ?? 0;
}

beforeEach(() => {
  handlers = new FakeHandlers();
  seen = [];
  sent = [];
  closed = [];
  replies = [];
  joining = false;
  requests = new Counter({
    name: 'r',
    help: 'r',
    labelNames: ['action', 'outcome'],
    registers: [],
  });
  rejected = new Counter({ name: 'x', help: 'x', labelNames: ['reason'], registers: [] });
});

describe('bad frames', () => {
  it('text that is not JSON: errorR JSON, no id', () => {
    dispatch().frame('{"a":"ping",', false, false);
    expect(sent).toEqual([{ a: 'errorR', s: false, e: code('JSON') }]);
    expect(handlers.runs).toEqual([]);
  });

  it('JSON that is not a frame: its `a` and `id` echoed only when they are valid', () => {
    const d = dispatch();
    d.frame(json({ a: 7, id: 3 }), false, false);
    d.frame(json({ a: 'ping', id: -1 }), false, false);
    d.frame(json([1, 2]), false, false);
    expect(sent).toEqual([
      { a: 'errorR', s: false, e: code('JSON_FIELD_INVALID'), id: 3 },
      { a: 'pingR', s: false, e: code('JSON_FIELD_INVALID') },
      { a: 'errorR', s: false, e: code('JSON_FIELD_INVALID') },
    ]);
    expect(handlers.runs).toEqual([]);
  });

  it('an unknown action: UNKNOWN_ACTION, id echoed, counted as other', async () => {
    dispatch().frame(json({ a: 'deleteRoom', id: 'x' }), false, false);
    expect(sent).toEqual([{ a: 'deleteRoomR', s: false, e: code('UNKNOWN_ACTION'), id: 'x' }]);
    expect(await count(requests, { action: 'other', outcome: 'UNKNOWN_ACTION' })).toBe(1);
  });

  it('a binary frame closes the socket (1003), unread', async () => {
    dispatch().frame(Buffer.from(json({ a: 'ping', d: {} })), true, false);
    expect(closed).toEqual([[CloseCodes.unsupportedData, 'binary frames are not supported']]);
    expect(sent).toEqual([]);
    expect(handlers.runs).toEqual([]);
    expect(await count(rejected, { reason: 'binary' })).toBe(1);
  });
});

describe('limits', () => {
  it('a flood: the burst passes, then RATE_LIMITED (garbage too), then 1008', async () => {
    // Two frames at once, and no refill while the test runs.
    const d = dispatch({ ratePerS: 0.001, burst: 2 });
    d.frame(json({ a: 'ping', d: {}, id: 1 }), false, false);
    d.frame(json({ a: 'ping', d: {}, id: 2 }), false, false);
    d.frame(json({ a: 'ping', d: {}, id: 3 }), false, false);
    d.frame('not json', false, false);
    d.frame(json({ a: 'ping', id: -1 }), false, false);
    d.frame(json({ a: 'nope', id: 4 }), false, false);
    expect(closed).toEqual([]);
    // Refusals past twice the burst: a flood.
    d.frame(json({ a: 'ping', d: {}, id: 5 }), false, false);
    expect(closed).toEqual([[CloseCodes.policyViolation, 'rate limit exceeded']]);
    expect(handlers.runs.map((r) => r.id)).toEqual([1, 2]);
    const limited = code('RATE_LIMITED');
    expect(sent).toEqual([
      { a: 'pingR', s: false, e: limited, id: 3 },
      { a: 'errorR', s: false, e: limited },
      { a: 'pingR', s: false, e: limited },
      { a: 'nopeR', s: false, e: limited, id: 4 },
    ]);
    expect(await count(rejected, { reason: 'flood' })).toBe(1);
  });

  it('at most maxInflight requests run at once: the excess get RATE_LIMITED', async () => {
    const d = dispatch({ maxInflight: 2 });
    for (const id of [1, 2, 3]) d.frame(json({ a: 'ping', d: {}, id }), false, false);
    expect(handlers.runs.map((r) => r.id)).toEqual([1, 2]);
    expect(sent).toEqual([{ a: 'pingR', s: false, e: code('RATE_LIMITED'), id: 3 }]);
    handlers.at(0).resolve({ now: 1 });
    await answered();
    d.frame(json({ a: 'ping', d: {}, id: 4 }), false, false);
    expect(handlers.runs.map((r) => r.id)).toEqual([1, 2, 4]);
  });
});

describe('requests', () => {
  it('run by their handler, client and media actions alike; answered `<a>R` with d and id', async () => {
    const d = dispatch();
    d.frame(json({ a: 'listMembers', d: { after: 'x' }, id: 'm' }), false, false);
    d.frame(json({ a: 'getRouterRtpCapabilities' }), false, false);
    expect(handlers.runs.map((r) => [r.action, r.data, r.id])).toEqual([
      ['listMembers', { after: 'x' }, 'm'],
      ['getRouterRtpCapabilities', undefined, undefined],
    ]);
    expect(sent).toEqual([]);
    // Answered as they settle, not in the order they came.
    handlers.at(1).resolve({ codecs: [] });
    handlers.at(0).resolve(undefined);
    await answered();
    expect(sent).toEqual([
      { a: 'getRouterRtpCapabilitiesR', s: true, d: { codecs: [] } },
      { a: 'listMembersR', s: true, id: 'm' },
    ]);
    expect(await count(requests, { action: 'listMembers', outcome: 'ok' })).toBe(1);
  });

  it('a refusal is answered with its code; any other error is SYSTEM', async () => {
    const d = dispatch();
    d.frame(json({ a: 'exchangeSdp', d: {}, id: 1 }), false, false);
    d.frame(json({ a: 'exchangeSdp', d: {}, id: 2 }), false, false);
    handlers.at(0).reject(new ProtocolError('USER_NOT_AUTHENTICATED'));
    handlers.at(1).reject(new Error('a bug'));
    await answered();
    expect(sent).toEqual([
      { a: 'exchangeSdpR', s: false, e: code('USER_NOT_AUTHENTICATED'), id: 1 },
      { a: 'exchangeSdpR', s: false, e: code('SYSTEM'), id: 2 },
    ]);
    expect(await count(requests, { action: 'exchangeSdp', outcome: 'SYSTEM' })).toBe(1);
  });

  it('a reply to a server request (`sid`) goes to the server calls, unanswered', () => {
    const reply = { a: 'getStatsR', s: true, d: {}, sid: 4 };
    dispatch().frame(json(reply), false, false);
    expect(replies).toEqual([reply]);
    expect(sent).toEqual([]);
    expect(handlers.runs).toEqual([]);
  });
});

describe('a join and the events held meanwhile', () => {
  beforeEach(() => {
    // As the connection does: a join from a fresh connection begins at once.
    handlers.onRun = (action) => {
      if (action === 'join') joining = true;
    };
  });

  it('its reply goes out, then what was held; a request answered meanwhile releases nothing', async () => {
    const d = dispatch();
    d.frame(json({ a: 'join', d: {}, id: 'j' }), false, true);
    d.frame(json({ a: 'ping', d: {}, id: 'p' }), false, false);
    handlers.at(1).resolve({ now: 1 });
    await answered();
    expect(seen).toEqual(['pingR ok']);
    handlers.at(0).resolve({ socketId: 's' });
    await answered();
    expect(seen).toEqual(['pingR ok', 'joinR ok', 'release']);
  });

  it('a join refused after it began releases too, after its error', async () => {
    const d = dispatch();
    d.frame(json({ a: 'join', d: {}, id: 'j' }), false, true);
    handlers.at(0).reject(new ProtocolError('AUTH_FAILED'));
    await answered();
    expect(seen).toEqual([`joinR 0x${code('AUTH_FAILED').toString(16)}`, 'release']);
  });

  it('a request that begins nothing, or comes while a join runs, releases nothing', async () => {
    const d = dispatch();
    d.frame(json({ a: 'ping', d: {} }), false, true);
    joining = true;
    d.frame(json({ a: 'join', d: {} }), false, false);
    handlers.at(0).resolve({ now: 1 });
    handlers.at(1).reject(new ProtocolError('ROOM_ALREADY_JOINED'));
    await answered();
    expect(seen).toEqual(['pingR ok', `joinR 0x${code('ROOM_ALREADY_JOINED').toString(16)}`]);
  });
});

describe('notifications', () => {
  it('taken without a reply; a refused one is answered with its code and id', async () => {
    const d = dispatch();
    d.frame(json({ a: 'eventCpu', d: { cpuUsed: 5 } }), false, false);
    d.frame(json({ a: 'eventFreeze' }), false, false);
    expect(handlers.notified).toEqual([
      { kind: 'eventCpu', data: { cpuUsed: 5 } },
      { kind: 'eventFreeze', data: undefined },
    ]);
    expect(sent).toEqual([]);
    handlers.refuse = new ProtocolError('USER_NOT_AUTHENTICATED');
    d.frame(json({ a: 'eventCpu', d: { cpuUsed: 5 }, id: 9 }), false, false);
    expect(sent).toEqual([{ a: 'eventCpuR', s: false, e: code('USER_NOT_AUTHENTICATED'), id: 9 }]);
    expect(handlers.runs).toEqual([]);
    expect(await count(requests, { action: 'eventCpu', outcome: 'ok' })).toBe(1);
  });
});
