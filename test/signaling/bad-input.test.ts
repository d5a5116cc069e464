/**
 * Bad input against a real gateway (rooms service and two gateways on the real NATS and
 * PostgreSQL, with small limits): frames that are not JSON, not a frame, name no known
 * action or carry wrong data; requests out of order; binary, oversized and invalid UTF-8
 * frames; floods and too many requests in flight; a silent socket. Each is answered with
 * its error code (or closes the socket with its close code), and nothing else is harmed:
 * other clients keep working, PostgreSQL holds exactly the sessions that should exist.
 *
 * Error codes are written out as numbers here (not read from ErrorCodes): they are the
 * wire protocol, and a change to the table must show up as a failing test.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import type { Incoming } from '@switchboard/bus';
import { mintToken } from '@switchboard/devstack';
import { signalingSubjects, socketRelay, type JoinReply } from '@switchboard/protocol';
import { candidate, sdp, sleep } from './fixtures.ts';
import { TestClient, type Frame } from './client.ts';
import { TIMINGS, startSignaling, type SignalingPlatform } from './platform.ts';

const LIMITS = {
  WS_MAX_FRAME_BYTES: '4096',
  WS_RATE_LIMIT_PER_S: '20',
  WS_RATE_LIMIT_BURST: '40',
  WS_MAX_INFLIGHT: '8',
};
const MAX_FRAME = 4096;
const BURST = 40;
const RATE_PER_S = 20;
const MAX_INFLIGHT = 8;

/** The wire codes (libs/protocol/src/errors.ts), pinned. */
const E = {
  JSON: 0x502,
  MISSING: 0x503,
  INVALID: 0x504,
  AUTH_FAILED: 0x506,
  UNKNOWN_ACTION: 0x510,
  NOT_AUTHENTICATED: 0x511,
  NO_SUCH_SOCKET: 0x512,
  ALREADY_JOINED: 0x523,
  SDP_DECODE: 0x528,
  RATE_LIMITED: 0x533,
} as const;

/** A well-formed socketId nobody holds. */
const NOBODY = 'f'.repeat(32);

// ------------------------------------------------------------------------------ helpers

/** Every client a test opened; those that joined also have their room here. */
const clients: TestClient[] = [];
const roomOf = new Map<TestClient, string>();

async function connect(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  clients.push(c);
  return c;
}

async function joined(url: string, roomId: string, userId: string): Promise<TestClient> {
  const c = await TestClient.join(url, roomId, userId);
  clients.push(c);
  roomOf.set(c, roomId);
  return c;
}

/** Kill every client of the describe that is ending. */
function dropClients(): void {
  for (const c of clients) c.kill();
  clients.length = 0;
  roomOf.clear();
}

function err(action: string, e: number, id?: string | number): Frame {
  return id === undefined ? { a: `${action}R`, s: false, e } : { a: `${action}R`, s: false, e, id };
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `probe` every 100 ms until `done` holds (or fail with the last value). */
async function until<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(v)}`,
      );
    }
    await sleep(100);
  }
}

/** Send one text frame as it is and return the next frame the client receives. */
async function replyTo(c: TestClient, raw: string): Promise<Frame> {
  const from = c.frames.length;
  c.sendRaw(raw);
  return await c.waitFor(
    () => true,
    5000,
    `the reply to ${JSON.stringify(raw.slice(0, 80))}`,
    from,
  );
}

let sentinels = 0;
/**
 * A request every gateway answers at once (unknown action): once its reply is in, every
 * reply to what was sent before it is in too. Returns that reply.
 */
async function sentinel(c: TestClient): Promise<Frame> {
  const id = `sentinel-${++sentinels}`;
  c.sendRaw(JSON.stringify({ a: 'sentinel', id }));
  const r = await c.waitFor((f) => f.id === id, 5000, id);
  expect(r).toEqual(err('sentinel', E.UNKNOWN_ACTION, id));
  return r;
}

async function joinData(
  roomId: string,
  userId: string,
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  return {
    roomId,
    bearer: await mintToken({ sub: userId, rooms: [roomId] }),
    platform: 'Web',
    ...extra,
  };
}

/**
 * A describe's platform (`env`) and a client of its database: started before its tests and
 * handed to `started`; after them the describe's clients are dropped, the database client
 * ended (before the platform drops the database), then the platform stopped.
 */
function usePlatformAndDb(
  env: Record<string, string>,
  started: (sp: SignalingPlatform, db: pg.Client) => void,
): void {
  let sp: SignalingPlatform | undefined;
  let db: pg.Client | undefined;
  beforeAll(async () => {
    sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'), env);
    db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    started(sp, db);
  });
  afterAll(async () => {
    dropClients();
    await db?.end();
    await sp?.stop();
  });
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

interface SessionRow {
  socket_id: string;
  room_id: string;
  state: string;
  cpu_used: number | null;
  /** epoch ms (cpu_at is stored as UTC without a zone, like every timestamp of the table) */
  cpu_at_ms: number | null;
}

async function sessionRows(db: pg.Client): Promise<SessionRow[]> {
  const r = await db.query<SessionRow>(
    `SELECT socket_id, room_id, state::text AS state, cpu_used,
            (EXTRACT(EPOCH FROM cpu_at AT TIME ZONE 'UTC') * 1000)::float8 AS cpu_at_ms
     FROM sessions ORDER BY socket_id`,
  );
  return r.rows;
}

async function sessionRow(db: pg.Client, socketId: string): Promise<SessionRow | undefined> {
  return (await sessionRows(db)).find((s) => s.socket_id === socketId);
}

async function roomIds(db: pg.Client): Promise<string[]> {
  const r = await db.query<{ id: string }>('SELECT id FROM rooms ORDER BY id');
  return r.rows.map((row) => row.id);
}

// ---------------------------------------------------------------------------------- tests

describe('bad input on a gateway with small limits', () => {
  // Every frame counts against its connection's bucket (WS_RATE_LIMIT_BURST 40), so each
  // test below sends fewer than 40 frames per connection, except where limits are tested.
  let sp: SignalingPlatform;
  let db: pg.Client;
  let startedAt: number;

  usePlatformAndDb(LIMITS, (p, d) => {
    sp = p;
    db = d;
    startedAt = Date.now();
  });

  it('frames that are not JSON: 0x502 as errorR; the socket stays open and can join', async () => {
    const c = await connect(sp.gw1.url);
    const garbage = [
      '{oops',
      '',
      ' ',
      '{"a":"join"',
      "{'a':'join'}",
      '{"a":"join",}',
      '{"a":"fly","id":1}x',
      'undefined',
      'NaN',
      '[1,]',
      'join',
      '\u0000',
    ];
    for (const raw of garbage) {
      expect(await replyTo(c, raw), JSON.stringify(raw)).toEqual(err('error', E.JSON));
    }
    const r = await c.request('join', await joinData('room-after-garbage', 'gary'));
    expect(r).toMatchObject({ a: 'joinR', s: true });
    c.socketId = (r.d as JoinReply).socketId;
    roomOf.set(c, 'room-after-garbage');
    await sentinel(c);
    expect(c.frames).toHaveLength(garbage.length + 2);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('JSON that is not a frame: 0x504/0x503 as errorR, id echoed only when valid', async () => {
    const c = await connect(sp.gw1.url);
    const cases: [string, Frame][] = [
      // JSON, but not an object: JSON_FIELD_INVALID.
      ['null', err('error', E.INVALID)],
      ['42', err('error', E.INVALID)],
      ['-1', err('error', E.INVALID)],
      ['true', err('error', E.INVALID)],
      ['"x"', err('error', E.INVALID)],
      ['[]', err('error', E.INVALID)],
      ['[{"a":"fly","id":1}]', err('error', E.INVALID)],
      // An object without `a`: JSON_FIELD_MISSING; a valid id is still echoed.
      ['{}', err('error', E.MISSING)],
      ['{"d":{}}', err('error', E.MISSING)],
      ['{"id":7}', err('error', E.MISSING, 7)],
      ['{"id":"abc","d":null}', err('error', E.MISSING, 'abc')],
      // `a` that is not a string.
      ['{"a":5}', err('error', E.INVALID)],
      ['{"a":5,"id":"x1"}', err('error', E.INVALID, 'x1')],
      ['{"a":null}', err('error', E.INVALID)],
      ['{"a":["join"]}', err('error', E.INVALID)],
      ['{"a":{"x":1}}', err('error', E.INVALID)],
      ['{"a":true,"id":0}', err('error', E.INVALID, 0)],
      // A usable `a` but an id that is not one: the action is named, no id is echoed.
      ['{"a":"join","id":{}}', err('join', E.INVALID)],
      ['{"a":"join","id":null}', err('join', E.INVALID)],
      ['{"a":"join","id":-1}', err('join', E.INVALID)],
      ['{"a":"join","id":1.5}', err('join', E.INVALID)],
      ['{"a":"join","id":1e400}', err('join', E.INVALID)],
      ['{"a":"join","id":9007199254740992}', err('join', E.INVALID)],
      ['{"a":"join","id":""}', err('join', E.INVALID)],
      [JSON.stringify({ a: 'join', id: 'i'.repeat(65) }), err('join', E.INVALID)],
      ['{"a":"join","id":[1]}', err('join', E.INVALID)],
      ['{"a":"join","id":true}', err('join', E.INVALID)],
      // The envelope is checked before the action: an unknown one with a bad id is 0x504.
      ['{"a":"fly","id":-5}', err('fly', E.INVALID)],
    ];
    for (const [raw, want] of cases) {
      expect(await replyTo(c, raw), raw).toEqual(want);
    }
    await sentinel(c);
    expect(c.frames).toHaveLength(cases.length + 1);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('unknown actions: 0x510, id echoed (string 1..64 chars or safe integer >= 0)', async () => {
    const c = await connect(sp.gw2.url);
    const cases: [unknown, Frame][] = [
      [{ a: 'fly', id: 1 }, err('fly', E.UNKNOWN_ACTION, 1)],
      [{ a: 'fly' }, err('fly', E.UNKNOWN_ACTION)],
      [{ a: 'fly', id: 0 }, err('fly', E.UNKNOWN_ACTION, 0)],
      [{ a: 'fly', id: 'i'.repeat(64) }, err('fly', E.UNKNOWN_ACTION, 'i'.repeat(64))],
      [
        { a: 'fly', id: Number.MAX_SAFE_INTEGER },
        err('fly', E.UNKNOWN_ACTION, Number.MAX_SAFE_INTEGER),
      ],
      [{ a: 'fly', id: 2, d: { anything: [1, 2] } }, err('fly', E.UNKNOWN_ACTION, 2)],
      // Unknown envelope fields are allowed (ClientFrame is a plain Type.Object).
      [{ a: 'fly', id: 3, extra: { deep: true } }, err('fly', E.UNKNOWN_ACTION, 3)],
      [{ a: 'JOIN', id: 4 }, err('JOIN', E.UNKNOWN_ACTION, 4)],
      [{ a: 'joinR', id: 5 }, err('joinR', E.UNKNOWN_ACTION, 5)],
      // Names of Object.prototype are not actions.
      [{ a: '__proto__', id: 6 }, err('__proto__', E.UNKNOWN_ACTION, 6)],
      [{ a: 'constructor', id: 7 }, err('constructor', E.UNKNOWN_ACTION, 7)],
      [{ a: 'toString', id: 8 }, err('toString', E.UNKNOWN_ACTION, 8)],
      [{ a: 'hasOwnProperty' }, err('hasOwnProperty', E.UNKNOWN_ACTION)],
      // Server events are not client actions.
      [{ a: 'eventLeave', id: 9 }, err('eventLeave', E.UNKNOWN_ACTION, 9)],
      [{ a: 'eventExchangeSdp', id: 10 }, err('eventExchangeSdp', E.UNKNOWN_ACTION, 10)],
      // 64 characters is the longest `a`.
      [{ a: 'a'.repeat(64), id: 11 }, err('a'.repeat(64), E.UNKNOWN_ACTION, 11)],
    ];
    for (const [frame, want] of cases) {
      const raw = JSON.stringify(frame);
      expect(await replyTo(c, raw), raw).toEqual(want);
    }
    await sentinel(c);
    expect(c.frames).toHaveLength(cases.length + 1);
  });

  it('an `a` the envelope itself refuses (empty, over 64 chars) is answered as errorR', async () => {
    // The envelope requires 1..64 characters of `a`; one that breaks this is not a
    // usable action name and must not be reflected into the reply's `a`.
    const c = await connect(sp.gw1.url);
    const cases: [string, Frame][] = [
      ['{"a":"","id":1}', err('error', E.INVALID, 1)],
      [JSON.stringify({ a: 'a'.repeat(65), id: 2 }), err('error', E.INVALID, 2)],
      [JSON.stringify({ a: 'a'.repeat(3000) }), err('error', E.INVALID)],
    ];
    // Long names are shown by their length, so a failure stays readable.
    const shown = (f: Frame): Frame => (f.a.length > 70 ? { ...f, a: `<${f.a.length} chars>` } : f);
    const got: Frame[] = [];
    for (const [raw] of cases) got.push(shown(await replyTo(c, raw)));
    expect(got).toEqual(cases.map(([, want]) => shown(want)));
  });

  it('join: missing fields are 0x503 (a missing one wins over a wrong one)', async () => {
    const c = await connect(sp.gw1.url);
    const good = await joinData('room-join-missing', 'mia');
    const without = (k: string): Record<string, unknown> =>
      Object.fromEntries(Object.entries(good).filter(([key]) => key !== k));
    const cases: [string, unknown][] = [
      ['no d', undefined],
      ['empty d', {}],
      ['no roomId', without('roomId')],
      ['no bearer', without('bearer')],
      ['no platform', without('platform')],
      ['no bearer, roomId a number', { ...without('bearer'), roomId: 5 }],
    ];
    for (const [what, d] of cases) {
      expect(await c.request('join', d), what).toEqual(
        err('join', E.MISSING, expect.any(Number) as number),
      );
    }
    expect(c.frames).toHaveLength(cases.length);
  });

  it('join: wrong types and values are 0x504; unknown fields are allowed; then it joins', async () => {
    const c = await connect(sp.gw2.url);
    const good = await joinData('room-join-types', 'tom');
    const cases: [string, unknown][] = [
      ['d null', null],
      ['d an array', [good]],
      ['d a string', 'room-join-types'],
      ['roomId a number', { ...good, roomId: 5 }],
      ['roomId null', { ...good, roomId: null }],
      ['roomId empty', { ...good, roomId: '' }],
      ['roomId with spaces', { ...good, roomId: 'room with spaces' }],
      ['roomId with a slash', { ...good, roomId: 'room/x' }],
      ['roomId not ASCII', { ...good, roomId: 'räum' }],
      ['roomId of 129 chars', { ...good, roomId: 'r'.repeat(129) }],
      ['roomId of 200 chars', { ...good, roomId: 'r'.repeat(200) }],
      ['bearer empty', { ...good, bearer: '' }],
      ['bearer a number', { ...good, bearer: 5 }],
      ['platform a number', { ...good, platform: 5 }],
      ['platform of 257 chars', { ...good, platform: 'p'.repeat(257) }],
      ['orientation 45', { ...good, orientation: 45 }],
      ['orientation "90"', { ...good, orientation: '90' }],
      ['orientation -90', { ...good, orientation: -90 }],
      ['camera "side"', { ...good, camera: 'side' }],
      ['camera "FRONT"', { ...good, camera: 'FRONT' }],
      ['deviceName a number', { ...good, deviceName: 5 }],
      ['networkType an object', { ...good, networkType: {} }],
      ['version an array', { ...good, version: [] }],
    ];
    for (const [what, d] of cases) {
      expect(await c.request('join', d), what).toEqual(
        err('join', E.INVALID, expect.any(Number) as number),
      );
    }
    // Well-formed but not a token: validation passed, the verifier refuses it.
    expect(await c.request('join', { ...good, bearer: 'not-a-jwt' })).toEqual(
      err('join', E.AUTH_FAILED, expect.any(Number) as number),
    );
    expect(c.frames).toHaveLength(cases.length + 1);

    // JoinData is a plain Type.Object: additional properties are allowed (and ignored).
    const r = await c.request('join', { ...good, extra: 'ignored', nested: { deep: [1] } });
    expect(r).toMatchObject({ a: 'joinR', s: true, d: { roomSize: 1, sessions: [] } });
    c.socketId = (r.d as JoinReply).socketId;
    roomOf.set(c, 'room-join-types');
    const row = await sessionRow(db, c.socketId);
    expect(row).toMatchObject({ room_id: 'room-join-types', state: 'ACTIVE' });
  });

  it('requests before join: 0x511 with valid data; invalid data is refused first', async () => {
    const before = await sessionRows(db);
    const c = await connect(sp.gw1.url);
    const to = 'a'.repeat(32);
    const cases: [string, string, unknown, number][] = [
      // Valid data, no session.
      ['exchangeSdp', 'valid', { to, sdp: sdp('offer', 'x') }, E.NOT_AUTHENTICATED],
      // The session is checked before the SDP is decoded.
      ['exchangeSdp', 'sdp not JSON', { to, sdp: 'v=0 not json' }, E.NOT_AUTHENTICATED],
      ['exchangeCandidate', 'valid', { to, candidate: candidate(1) }, E.NOT_AUTHENTICATED],
      ['orientationChange', 'valid', { orientation: 90, camera: 'back' }, E.NOT_AUTHENTICATED],
      ['eventCpu', 'valid', { cpuUsed: 5 }, E.NOT_AUTHENTICATED],
      ['eventFreeze', 'valid (no d)', undefined, E.NOT_AUTHENTICATED],
      // Invalid data: 0x503 / 0x504 before the session is looked at.
      ['exchangeSdp', 'no d', undefined, E.MISSING],
      ['exchangeSdp', 'empty d', {}, E.MISSING],
      ['exchangeSdp', 'no sdp', { to }, E.MISSING],
      ['exchangeSdp', 'to not hex', { to: 'xyz', sdp: sdp('offer', 'x') }, E.INVALID],
      ['exchangeSdp', 'to upper case', { to: 'A'.repeat(32), sdp: sdp('offer', 'x') }, E.INVALID],
      ['exchangeSdp', 'sdp a number', { to, sdp: 5 }, E.INVALID],
      ['exchangeSdp', 'sdp without text', { to, sdp: { type: 'offer' } }, E.MISSING],
      ['exchangeCandidate', 'empty d', {}, E.MISSING],
      ['exchangeCandidate', 'candidate a string', { to, candidate: 'candidate:1' }, E.INVALID],
      ['exchangeCandidate', 'candidate empty', { to, candidate: {} }, E.MISSING],
      [
        'exchangeCandidate',
        'sdpMLineIndex -1',
        { to, candidate: { candidate: 'c', sdpMLineIndex: -1 } },
        E.INVALID,
      ],
      ['orientationChange', 'no d', undefined, E.MISSING],
      ['orientationChange', 'empty d', {}, E.MISSING],
      ['orientationChange', 'orientation 45', { orientation: 45, camera: 'front' }, E.INVALID],
      ['orientationChange', 'no camera', { orientation: 90 }, E.MISSING],
      ['orientationChange', 'camera "side"', { orientation: 90, camera: 'side' }, E.INVALID],
      ['eventCpu', 'cpuUsed "x"', { cpuUsed: 'x' }, E.INVALID],
      ['eventFreeze', 'd a number', 5, E.INVALID],
      ['reconnect', 'no d', undefined, E.MISSING],
      ['reconnect', 'empty d', {}, E.MISSING],
      ['reconnect', 'socketId not hex', { socketId: 'xyz' }, E.INVALID],
      ['reconnect', 'socketId of 64', { socketId: 'a'.repeat(64) }, E.INVALID],
      ['reconnect', 'resumeToken short', { socketId: NOBODY, resumeToken: 'x' }, E.INVALID],
      ['reconnect', 'resumeToken a number', { socketId: NOBODY, resumeToken: 7 }, E.INVALID],
      ['refreshToken', 'no d', undefined, E.MISSING],
      ['refreshToken', 'bearer empty', { bearer: '' }, E.INVALID],
    ];
    for (const [action, what, d, code] of cases) {
      expect(await c.request(action, d), `${action}: ${what}`).toEqual(
        err(action, code, expect.any(Number) as number),
      );
    }
    expect(c.frames).toHaveLength(cases.length);
    // None of it reached the rooms service.
    expect(await sessionRows(db)).toEqual(before);
  });

  it('a join, a second join and a reconnect at once: one session, the others 0x523', async () => {
    const c = await connect(sp.gw2.url);
    c.sendRaw(JSON.stringify({ a: 'join', d: await joinData('room-double', 'dbl'), id: 'j1' }));
    c.sendRaw(JSON.stringify({ a: 'join', d: await joinData('room-double-2', 'dbl'), id: 'j2' }));
    c.sendRaw(JSON.stringify({ a: 'reconnect', d: { socketId: NOBODY }, id: 'j3' }));
    const first = await c.waitFor((f) => f.id === 'j1', 5000, 'j1');
    expect(first).toMatchObject({ a: 'joinR', s: true, id: 'j1', d: { roomSize: 1 } });
    expect(await c.waitFor((f) => f.id === 'j2', 5000, 'j2')).toEqual(
      err('join', E.ALREADY_JOINED, 'j2'),
    );
    expect(await c.waitFor((f) => f.id === 'j3', 5000, 'j3')).toEqual(
      err('reconnect', E.ALREADY_JOINED, 'j3'),
    );
    c.socketId = (first.d as JoinReply).socketId;
    roomOf.set(c, 'room-double');
    expect(await c.request('join', await joinData('room-double-2', 'dbl'))).toEqual(
      err('join', E.ALREADY_JOINED, expect.any(Number) as number),
    );
    const mine = (await sessionRows(db)).filter((s) => s.room_id.startsWith('room-double'));
    expect(mine.map((s) => [s.socket_id, s.room_id, s.state])).toEqual([
      [c.socketId, 'room-double', 'ACTIVE'],
    ]);
    expect(await roomIds(db)).not.toContain('room-double-2');
  });

  it('exchangeSdp after join: undecodable SDP 0x528, own socketId 0x504, unknown 0x512', async () => {
    const a = await joined(sp.gw1.url, 'room-sdp', 'sdp-a');
    const b = await joined(sp.gw2.url, 'room-sdp', 'sdp-b');
    const own = a.socketId;
    const peer = b.socketId;
    if (own === undefined || peer === undefined) throw new Error('not joined');
    const cases: [string, string, unknown, number][] = [
      // The SDP as text that is not JSON, or JSON that is not an RTCSessionDescriptionInit.
      ['exchangeSdp', 'sdp text not JSON', { to: peer, sdp: 'v=0 not json' }, E.SDP_DECODE],
      [
        'exchangeSdp',
        'sdp text: an object without type',
        { to: peer, sdp: JSON.stringify({ sdp: 'v=0\r\n' }) },
        E.SDP_DECODE,
      ],
      [
        'exchangeSdp',
        'sdp text: an unknown type',
        { to: peer, sdp: JSON.stringify({ type: 'bogus', sdp: 'v=0\r\n' }) },
        E.SDP_DECODE,
      ],
      ['exchangeSdp', 'sdp text: a number', { to: peer, sdp: '42' }, E.SDP_DECODE],
      ['exchangeSdp', 'sdp text: null', { to: peer, sdp: 'null' }, E.SDP_DECODE],
      ['exchangeSdp', 'sdp text: empty', { to: peer, sdp: '' }, E.SDP_DECODE],
      [
        'exchangeSdp',
        'sdp text: not v=0',
        { to: peer, sdp: JSON.stringify({ type: 'offer', sdp: 'hello' }) },
        E.SDP_DECODE,
      ],
      [
        'exchangeSdp',
        'sdp object: not v=0',
        { to: peer, sdp: { type: 'offer', sdp: 'hello\r\nv=0\r\n' } },
        E.SDP_DECODE,
      ],
      [
        'exchangeSdp',
        'sdp object: empty text',
        { to: peer, sdp: { type: 'answer', sdp: '' } },
        E.SDP_DECODE,
      ],
      // An object SDP is checked by the request schema first.
      ['exchangeSdp', 'sdp object: no type', { to: peer, sdp: { sdp: 'v=0\r\n' } }, E.MISSING],
      [
        'exchangeSdp',
        'sdp object: unknown type',
        { to: peer, sdp: { type: 'bogus', sdp: 'v=0\r\n' } },
        E.INVALID,
      ],
      // Addressing.
      ['exchangeSdp', 'to: own socketId', { to: own, sdp: sdp('offer', 'self') }, E.INVALID],
      ['exchangeCandidate', 'to: own socketId', { to: own, candidate: candidate(1) }, E.INVALID],
      ['exchangeSdp', 'to: nobody', { to: NOBODY, sdp: sdp('offer', 'x') }, E.NO_SUCH_SOCKET],
      [
        'exchangeCandidate',
        'to: nobody',
        { to: NOBODY, candidate: candidate(1) },
        E.NO_SUCH_SOCKET,
      ],
      [
        'exchangeSdp',
        'to: peer in upper case',
        { to: peer.toUpperCase(), sdp: sdp('offer', 'x') },
        E.INVALID,
      ],
      ['orientationChange', 'orientation 1', { orientation: 1, camera: 'front' }, E.INVALID],
    ];
    for (const [action, what, d, code] of cases) {
      expect(await a.request(action, d), `${action}: ${what}`).toEqual(
        err(action, code, expect.any(Number) as number),
      );
    }
    // What is valid still goes through: a rollback needs no v=0.
    const rollback = { type: 'rollback', sdp: '' };
    expect(await a.request('exchangeSdp', { to: peer, sdp: rollback })).toMatchObject({
      a: 'exchangeSdpR',
      s: true,
    });
    const offer = sdp('offer', 'good');
    expect(await a.request('exchangeSdp', { to: peer, sdp: JSON.stringify(offer) })).toMatchObject({
      a: 'exchangeSdpR',
      s: true,
    });
    expect(
      await a.request('orientationChange', { orientation: 270, camera: 'back' }),
    ).toMatchObject({ a: 'orientationChangeR', s: true });
    await b.waitFor(() => b.events('eventExchangeSdp').length === 2, 5000, '2 SDPs');
    await b.event('eventOrientationChange', 5000);
    await sentinel(b);
    // The peer got exactly what was valid; the sender nothing of its own.
    const from = { socketId: own, userId: 'sdp-a' };
    expect(b.events('eventExchangeSdp').map((f) => f.d)).toEqual([
      { from, sdp: rollback },
      { from, sdp: offer },
    ]);
    expect(b.events('eventExchangeCandidate')).toEqual([]);
    expect(b.events('eventOrientationChange').map((f) => f.d)).toEqual([
      { from, platform: 'Web', orientation: 270, camera: 'back' },
    ]);
    await sentinel(a);
    expect(a.events('eventExchangeSdp')).toEqual([]);
    expect(a.events('eventExchangeCandidate')).toEqual([]);
  });

  it('eventCpu after join: bad data 0x504 (eventCpuR); valid data gets no reply and is recorded', async () => {
    const c = await joined(sp.gw2.url, 'room-cpu', 'cpu');
    const socketId = c.socketId;
    if (socketId === undefined) throw new Error('not joined');
    const bad: [string, unknown, number][] = [
      ['cpuUsed "x"', { cpuUsed: 'x' }, E.INVALID],
      ['cpuUsed -1', { cpuUsed: -1 }, E.INVALID],
      ['cpuUsed 10001', { cpuUsed: 10_001 }, E.INVALID],
      ['cpuUsed 1.5', { cpuUsed: 1.5 }, E.INVALID],
      ['cpuUsed null', { cpuUsed: null }, E.INVALID],
      ['no d', undefined, E.MISSING],
      ['d a string', 'x', E.INVALID],
      ['empty d', {}, E.MISSING],
    ];
    for (const [what, d, code] of bad) {
      expect(await c.request('eventCpu', d), what).toEqual(
        err('eventCpu', code, expect.any(Number) as number),
      );
    }
    expect((await sessionRow(db, socketId))?.cpu_used).toBeNull();

    const sentAt = Date.now();
    c.sendRaw(JSON.stringify({ a: 'eventCpu', d: { cpuUsed: 37 }, id: 'cpu-1' }));
    await sentinel(c);
    const recorded = await until(
      'cpu_used 37',
      async () => await sessionRow(db, socketId),
      (s) => s?.cpu_used === 37,
    );
    expect(recorded?.cpu_at_ms).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(recorded?.cpu_at_ms).toBeLessThanOrEqual(Date.now() + 1000);

    // Without an id, at the upper bound: the last value is kept.
    c.sendRaw(JSON.stringify({ a: 'eventCpu', d: { cpuUsed: 10_000 } }));
    await sentinel(c);
    await until(
      'cpu_used 10000',
      async () => await sessionRow(db, socketId),
      (s) => s?.cpu_used === 10_000,
    );
    // No reply to either valid one: only the errors and the two sentinels.
    expect(c.frames.filter((f) => f.a === 'eventCpuR')).toHaveLength(bad.length);
    expect(c.frames).toHaveLength(1 + bad.length + 2);
  });

  it('a binary frame closes the socket with 1003; a joined session enters its window', async () => {
    const c = await joined(sp.gw1.url, 'room-binary', 'bin');
    const socketId = c.socketId;
    if (socketId === undefined) throw new Error('not joined');
    c.sendRaw(Buffer.from(JSON.stringify({ a: 'fly', id: 1 })), true);
    expect(await withTimeout(c.closed, 5000, 'close')).toEqual({
      code: 1003,
      reason: 'binary frames are not supported',
    });
    expect(c.frames.map((f) => f.a)).toEqual(['joinR']);
    // Not a normal close: the session waits for a reconnect (and expires after the window).
    await until(
      'session DISCONNECTED',
      async () => await sessionRow(db, socketId),
      (s) => s?.state === 'DISCONNECTED',
    );

    const empty = await connect(sp.gw2.url);
    empty.sendRaw(Buffer.alloc(0), true);
    expect(await withTimeout(empty.closed, 5000, 'close')).toEqual({
      code: 1003,
      reason: 'binary frames are not supported',
    });
    expect(empty.frames).toEqual([]);
  });

  it('a frame of WS_MAX_FRAME_BYTES is read; one byte more closes the socket with 1009', async () => {
    const c = await connect(sp.gw1.url);
    const bare = JSON.stringify({ a: 'fly', id: 1, pad: '' });
    const atLimit = JSON.stringify({ a: 'fly', id: 1, pad: 'x'.repeat(MAX_FRAME - bare.length) });
    expect(Buffer.byteLength(atLimit)).toBe(MAX_FRAME);
    expect(await replyTo(c, atLimit)).toEqual(err('fly', E.UNKNOWN_ACTION, 1));
    const over = JSON.stringify({ a: 'fly', id: 2, pad: 'x'.repeat(MAX_FRAME + 1 - bare.length) });
    expect(Buffer.byteLength(over)).toBe(MAX_FRAME + 1);
    c.sendRaw(over);
    expect(await withTimeout(c.closed, 5000, 'close')).toEqual({ code: 1009, reason: '' });
    expect(c.frames).toEqual([err('fly', E.UNKNOWN_ACTION, 1)]);

    // A fragmented message counts as a whole: within the limit it is one frame...
    const f = await connect(sp.gw2.url);
    f.ws.send('{"a":"fly",', { fin: false });
    f.ws.send('"id":3}', { fin: true });
    expect(await f.waitFor((r) => r.id === 3, 5000, 'fragmented')).toEqual(
      err('fly', E.UNKNOWN_ACTION, 3),
    );
    // ...and over it, fragments that are each small close the socket all the same.
    f.ws.send(`{"a":"fly","id":4,"pad":"${'x'.repeat(2000)}`, { fin: false });
    f.ws.send('x'.repeat(2000), { fin: false });
    f.ws.send(`${'x'.repeat(2000)}"}`, { fin: true });
    expect(await withTimeout(f.closed, 5000, 'close')).toEqual({ code: 1009, reason: '' });
    expect(f.frames).toEqual([err('fly', E.UNKNOWN_ACTION, 3)]);
  });

  it('invalid UTF-8 in a text frame closes the socket with 1007', async () => {
    const bad = [
      Buffer.from([0xff, 0xfe]),
      // Valid JSON around a truncated two-byte sequence.
      Buffer.concat([Buffer.from('{"a":"fly","id":"'), Buffer.from([0xc3]), Buffer.from('"}')]),
    ];
    for (const payload of bad) {
      const c = await connect(sp.gw1.url);
      c.ws.send(payload, { binary: false });
      expect(await withTimeout(c.closed, 5000, 'close')).toEqual({ code: 1007, reason: '' });
      expect(c.frames).toEqual([]);
    }
  });

  it('a flood: the burst passes, then 0x533, then 1008 after 2 x burst refusals; others unaffected', async () => {
    // The limiter counts refusals in windows of burst/rate (2 s) that it anchors at the
    // process's performance.now() origin: give the gateway that long since its start so
    // the window starts at the first refusal.
    const windowMs = (BURST / RATE_PER_S) * 1000;
    await sleep(Math.max(0, startedAt + windowMs + 200 - Date.now()));

    const a = await joined(sp.gw1.url, 'room-bystander', 'by-a');
    const b = await joined(sp.gw2.url, 'room-bystander', 'by-b');
    const f = await connect(sp.gw1.url);
    const N = 400;
    for (const i of range(1, N)) f.sendRaw(JSON.stringify({ a: 'fly', id: i }));
    // At the same time, another client of the same gateway relays to its peer (one
    // request after the other: ten at once would be over its own WS_MAX_INFLIGHT).
    const relays = (async () => {
      const got: Frame[] = [];
      for (const i of range(0, 9)) {
        got.push(await a.request('exchangeCandidate', { to: b.socketId, candidate: candidate(i) }));
      }
      return got;
    })();

    expect(await withTimeout(f.closed, 10_000, 'flood close')).toEqual({
      code: 1008,
      reason: 'rate limit exceeded',
    });
    const replies = f.frames;
    // Every frame up to the one that closed the socket was answered, in order.
    expect(replies.map((r) => r.id)).toEqual(range(1, replies.length));
    expect(replies.slice(0, BURST)).toEqual(
      range(1, BURST).map((i) => err('fly', E.UNKNOWN_ACTION, i)),
    );
    const refused = replies.filter((r) => r.e === E.RATE_LIMITED);
    expect(refused).toHaveLength(2 * BURST);
    // Past the burst only what the bucket refilled meanwhile passed.
    for (const r of replies) {
      expect([err('fly', E.UNKNOWN_ACTION, r.id), err('fly', E.RATE_LIMITED, r.id)]).toContainEqual(
        r,
      );
    }
    expect(replies.length).toBeLessThan(N);

    expect(await relays).toEqual(
      range(0, 9).map(() => ({
        a: 'exchangeCandidateR',
        s: true,
        id: expect.any(Number) as number,
      })),
    );
    await b.waitFor(() => b.events('eventExchangeCandidate').length === 10, 5000, '10 candidates');
    expect(b.events('eventExchangeCandidate').map((e) => e.d)).toEqual(
      range(0, 9).map((i) => ({
        from: { socketId: a.socketId, userId: 'by-a' },
        candidate: candidate(i),
      })),
    );
    // And afterwards, both ways.
    expect(
      (await b.request('exchangeCandidate', { to: a.socketId, candidate: candidate(99) })).s,
    ).toBe(true);
    await a.event('eventExchangeCandidate', 5000);
    expect(a.ws.readyState).toBe(WebSocket.OPEN);
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
  });

  it.each([
    ['not JSON', '{oops', E.JSON],
    ['not a frame', '{}', E.MISSING],
  ])('a flood of frames that are %s is rate limited too', async (_what, raw, code) => {
    const c = await connect(sp.gw2.url);
    const N = 400;
    const refused = err('error', E.RATE_LIMITED);
    try {
      for (let i = 0; i < N; i++) c.sendRaw(raw);
      // Whichever comes first: the close, or a reply to every frame.
      await withTimeout(
        Promise.race([c.closed, c.waitFor(() => c.frames.length >= N, 10_000, `${N} replies`)]),
        10_000,
        'the flood to end',
      );
      const summary = {
        open: c.ws.readyState === WebSocket.OPEN,
        firstBurst: c.frames.slice(0, BURST),
        others: c.frames.filter(
          (f) => !isDeepStrictEqual(f, err('error', code)) && !isDeepStrictEqual(f, refused),
        ),
        refused: c.frames.filter((f) => isDeepStrictEqual(f, refused)).length,
      };
      expect(summary).toEqual({
        open: false,
        firstBurst: range(1, BURST).map(() => err('error', code)),
        others: [],
        refused: 2 * BURST,
      });
      expect(await withTimeout(c.closed, 1000, 'close')).toEqual({
        code: 1008,
        reason: 'rate limit exceeded',
      });
    } finally {
      c.close();
    }
  });

  it('more than WS_MAX_INFLIGHT requests in flight: the excess get 0x533', async () => {
    const c = await joined(sp.gw1.url, 'room-inflight', 'busy');
    const other = await joined(sp.gw1.url, 'room-inflight', 'idle');
    // A stand-in for a gateway holding a socket: it answers relays only when told, so the
    // requests that reach it stay in flight for as long as the test wants.
    const target = 'e'.repeat(32);
    const held: Incoming[] = [];
    let hold = false;
    const sub = sp.bus.subscribe(
      signalingSubjects.socketAny(sp.bus.prefix, target),
      socketRelay,
      (_relay, incoming) => {
        if (hold) held.push(incoming);
        else incoming.respond({ ok: true, data: {} });
      },
    );
    try {
      // Its subscription is live once a relay gets through.
      await until(
        'the stand-in to answer',
        async () => await c.request('exchangeCandidate', { to: target, candidate: candidate(0) }),
        (r) => r.s === true,
      );
      hold = true;
      // Only the replies to these requests (events of the room may arrive meanwhile).
      const replies = (): Frame[] =>
        c.frames.filter((f) => typeof f.id === 'string' && f.id.startsWith('held-'));
      const n = MAX_INFLIGHT + 4;
      for (const i of range(1, n)) {
        c.sendRaw(
          JSON.stringify({
            a: 'exchangeCandidate',
            d: { to: target, candidate: candidate(i) },
            id: `held-${i}`,
          }),
        );
      }
      // The first MAX_INFLIGHT wait at the stand-in; the rest are refused at once.
      await c.waitFor(() => replies().length === n - MAX_INFLIGHT, 5000, 'refusals');
      expect(replies()).toEqual(
        range(MAX_INFLIGHT + 1, n).map((i) =>
          err('exchangeCandidate', E.RATE_LIMITED, `held-${i}`),
        ),
      );
      await until(
        `${MAX_INFLIGHT} relays held`,
        async () => held.length,
        (k) => k === MAX_INFLIGHT,
      );
      // The cap is per connection: another client of the gateway is not held up.
      expect(
        await other.request('orientationChange', { orientation: 0, camera: 'front' }),
      ).toMatchObject({ a: 'orientationChangeR', s: true });
      expect(replies()).toHaveLength(n - MAX_INFLIGHT);

      hold = false;
      for (const h of held.splice(0)) h.respond({ ok: true, data: {} });
      await c.waitFor(() => replies().length === n, 5000, 'the held replies');
      const answered = replies().slice(n - MAX_INFLIGHT);
      expect(answered.map((f) => f.id).sort()).toEqual(
        range(1, MAX_INFLIGHT)
          .map((i) => `held-${i}`)
          .sort(),
      );
      for (const f of answered) {
        expect(f).toEqual({ a: 'exchangeCandidateR', s: true, id: f.id });
      }
      // Drained: requests go through again.
      expect(
        (await c.request('exchangeCandidate', { to: target, candidate: candidate(50) })).s,
      ).toBe(true);
    } finally {
      sub.unsubscribe();
      for (const h of held.splice(0)) h.respond({ ok: true, data: {} });
    }
  });

  it('after all that: PostgreSQL holds exactly the connected sessions; every service runs', async () => {
    const live = clients.filter(
      (c) => c.socketId !== undefined && c.ws.readyState === WebSocket.OPEN,
    );
    const want = live
      .map((c) => ({ socket_id: c.socketId, room_id: roomOf.get(c), state: 'ACTIVE' }))
      .sort((x, y) => String(x.socket_id).localeCompare(String(y.socket_id)));
    // Sessions whose sockets the gateway closed leave after the reconnect window.
    await until(
      'sessions of connected clients only',
      async () =>
        (await sessionRows(db)).map((s) => ({
          socket_id: s.socket_id,
          room_id: s.room_id,
          state: s.state,
        })),
      (rows) => JSON.stringify(rows) === JSON.stringify(want),
      TIMINGS.RECONNECT_WINDOW_MS + 10_000,
    );
    expect(await roomIds(db)).toEqual([...new Set(want.map((w) => w.room_id))].sort());

    for (const p of [sp.gw1, sp.gw2, sp.platform.get('rooms')]) {
      expect(p.process.running).toBe(true);
      expect((await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(5000) })).status).toBe(
        200,
      );
    }
    // Every session still works.
    for (const c of live) {
      expect(
        await c.request('orientationChange', { orientation: 180, camera: 'front' }),
      ).toMatchObject({ a: 'orientationChangeR', s: true });
    }
  });
});

describe('heartbeat', () => {
  let sp: SignalingPlatform;
  let db: pg.Client;

  usePlatformAndDb(
    { ...LIMITS, WS_PING_INTERVAL_MS: '200', WS_IDLE_TIMEOUT_MS: '1000' },
    (p, d) => {
      sp = p;
      db = d;
    },
  );

  it('a socket that answers no ping is cut off; its session enters the window; others stay', async () => {
    const peer = await joined(sp.gw1.url, 'room-hb', 'answers');
    const peerJoinedAt = Date.now();

    // A client that does not answer pings (and sends nothing after its join).
    const silent = new WebSocket(`${sp.gw1.url.replace(/^http/, 'ws')}/api`, { autoPong: false });
    const received: Frame[] = [];
    silent.on('message', (data: Buffer) =>
      received.push(JSON.parse(data.toString('utf8')) as Frame),
    );
    silent.on('error', () => {
      // 'close' follows.
    });
    const closed = new Promise<{ code: number; at: number }>((resolve) => {
      silent.on('close', (code) => {
        resolve({ code, at: Date.now() });
      });
    });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        silent.once('open', () => {
          resolve();
        });
        silent.once('error', reject);
      }),
      5000,
      'open',
    );
    const sentAt = Date.now();
    silent.send(JSON.stringify({ a: 'join', d: await joinData('room-hb', 'silent'), id: 1 }));
    const joinedReply = await until(
      'joinR',
      async () => received.find((f) => f.a === 'joinR'),
      (f) => f !== undefined,
    );
    expect(joinedReply).toMatchObject({ a: 'joinR', s: true, id: 1 });
    const socketId = (joinedReply?.d as JoinReply).socketId;

    // Cut off (no close handshake: 1006) once silent for WS_IDLE_TIMEOUT_MS, at the next ping.
    const { code, at } = await withTimeout(closed, 5000, 'the silent socket to be cut off');
    expect(code).toBe(1006);
    expect(at - sentAt).toBeGreaterThanOrEqual(1000);
    expect(at - sentAt).toBeLessThan(4000);

    // It entered the reconnect window; it did not leave.
    await until(
      'the silent session DISCONNECTED',
      async () => await sessionRow(db, socketId),
      (s) => s?.state === 'DISCONNECTED',
    );
    expect(peer.events('eventLeave')).toEqual([]);
    // The window passes: now it leaves.
    const leave = await peer.event('eventLeave', TIMINGS.RECONNECT_WINDOW_MS + 5000);
    expect(Date.now() - at).toBeGreaterThanOrEqual(TIMINGS.RECONNECT_WINDOW_MS - 100);
    expect(leave.d).toEqual({ roomId: 'room-hb', roomSize: 1, socketId, userId: 'silent' });

    // The client that answers pings (and sent nothing either) is still there, well past 3 s.
    expect(Date.now() - peerJoinedAt).toBeGreaterThan(3000);
    expect(peer.ws.readyState).toBe(WebSocket.OPEN);
    expect(await sessionRow(db, peer.socketId ?? '')).toMatchObject({ state: 'ACTIVE' });
    expect(
      await peer.request('orientationChange', { orientation: 90, camera: 'back' }),
    ).toMatchObject({ a: 'orientationChangeR', s: true });
  });
});
