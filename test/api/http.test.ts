/**
 * The server API over HTTP, against the running api service (and the rooms service behind it):
 * authentication — every way a token can be wrong is a 401 with `www-authenticate: Bearer`,
 * counted by reason; grants and rooms — 403; input — bad path parameters, JSON, types, unknown
 * fields, sizes and content types are 400/413/415 naming the problem; 404 and 405; the headers
 * every reply carries; the metrics; and the routes the service registers are exactly those of
 * docs/openapi.json.
 */
import { readFileSync } from 'node:fs';
import { SignJWT, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ApiError, mintApiToken } from '@switchboard/client/server';
import {
  API_OPERATIONS,
  ApiRoutes,
  DEV_API_KEY,
  DEV_API_SECRET,
  ErrorCodes,
  type AdminGrants,
  type ApiErrorBody,
} from '@switchboard/protocol';
import { OPENAPI } from '../../scripts/openapi.ts';
import { ALL, SECOND_KEY, startApi, type ApiPlatform } from './platform.ts';

let p: ApiPlatform;

beforeAll(async () => {
  p = await startApi(inject('natsUrl'), inject('pgServerUrl'), {
    mediaNodes: 0,
    apiEnv: {
      API_TOKEN_MAX_TTL_S: '600',
      API_CLOCK_TOLERANCE_S: '5',
      API_BODY_LIMIT_BYTES: '4096',
    },
  });
});

afterAll(async () => {
  await p.stop();
});

const secret = new TextEncoder().encode(DEV_API_SECRET);
const now = (): number => Math.floor(Date.now() / 1000);

/** A token signed by hand: any header and claims (HS256 with the dev key unless said). */
async function handMade(
  claims: Record<string, unknown>,
  opts: { alg?: string; key?: Uint8Array | CryptoKey } = {},
): Promise<string> {
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: 'JWT' })
    .sign(opts.key ?? secret);
}

const base = (): Record<string, unknown> => ({
  iss: DEV_API_KEY,
  iat: now(),
  exp: now() + 60,
  admin: ALL,
});

async function refusal(res: Response): Promise<ApiErrorBody['error'] & { status: number }> {
  const body = (await res.json()) as ApiErrorBody;
  return { status: res.status, ...body.error };
}

/** The value of a counter of the api's /metrics with these labels (0 when absent). */
async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const text = await p.api.metrics();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      return Number(line.split(' ').at(-1));
    }
  }
  return 0;
}

describe('authentication', () => {
  it('refuses every token that is not a good one: 401, www-authenticate, counted by reason', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const cases: [string, string | null, string][] = [
      ['no header', null, 'missing'],
      ['not a bearer', 'Basic ZGV2OnNlY3JldA==', 'malformed'],
      ['not a JWT', 'Bearer not-a-token', 'malformed'],
      ['a JWE-shaped token', 'Bearer a.b.c.d.e', 'malformed'],
      [
        'alg none',
        `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(base())).toString('base64url')}.`,
        'algorithm',
      ],
      ['RS256', `Bearer ${await handMade(base(), { alg: 'RS256', key: privateKey })}`, 'algorithm'],
      [
        'HS512 with the right secret',
        `Bearer ${await handMade(base(), { alg: 'HS512', key: new TextEncoder().encode(DEV_API_SECRET.repeat(2)) })}`,
        'algorithm',
      ],
      [
        'a bad signature',
        `Bearer ${await handMade(base(), { key: new TextEncoder().encode(`${DEV_API_SECRET}x`) })}`,
        'bad_signature',
      ],
      ['an unknown key', `Bearer ${await handMade({ ...base(), iss: 'nobody' })}`, 'unknown_key'],
      ['no iss', `Bearer ${await handMade({ ...base(), iss: undefined })}`, 'claims'],
      [
        'expired',
        `Bearer ${await handMade({ ...base(), iat: now() - 120, exp: now() - 60 })}`,
        'expired',
      ],
      [
        'not yet valid',
        `Bearer ${await handMade({ ...base(), nbf: now() + 60, exp: now() + 120 })}`,
        'not_yet_valid',
      ],
      ['no exp', `Bearer ${await handMade({ ...base(), exp: undefined })}`, 'claims'],
      ['living too long', `Bearer ${await handMade({ ...base(), exp: now() + 3600 })}`, 'ttl'],
      [
        'too long without iat',
        `Bearer ${await handMade({ ...base(), iat: undefined, exp: now() + 3600 })}`,
        'ttl',
      ],
      [
        'an iat in the future to live long',
        `Bearer ${await handMade({ ...base(), iat: now() + 86_400, exp: now() + 86_400 + 60 })}`,
        'ttl',
      ],
      ['no admin claim', `Bearer ${await handMade({ ...base(), admin: undefined })}`, 'claims'],
      [
        'a bad admin claim',
        `Bearer ${await handMade({ ...base(), admin: { roomList: 'yes' } })}`,
        'claims',
      ],
    ];
    const before = new Map<string, number>();
    for (const reason of new Set(cases.map((c) => c[2]))) {
      before.set(reason, await counter('sb_api_auth_failures_total', { reason }));
    }
    for (const [what, header, reason] of cases) {
      const res = await fetch(`${p.url}/v1/rooms`, {
        headers: header === null ? {} : { authorization: header },
      });
      const r = await refusal(res);
      expect(r, what).toMatchObject({ status: 401, name: 'AUTH_FAILED' });
      expect(res.headers.get('www-authenticate'), what).toMatch(/^Bearer realm="switchboard"/);
      if (reason !== 'missing') {
        expect(res.headers.get('www-authenticate'), what).toContain('error="invalid_token"');
      }
    }
    for (const [reason, n] of before) {
      const expected = cases.filter((c) => c[2] === reason).length;
      expect(await counter('sb_api_auth_failures_total', { reason }), reason).toBe(n + expected);
    }
  });

  it('takes a good token of either key (two keys: a rotation), within the clock tolerance', async () => {
    for (const key of [{ keyId: DEV_API_KEY, secret: DEV_API_SECRET }, SECOND_KEY]) {
      const page = await p.client(ALL, key).listRooms({ limit: 1 });
      expect(page.rooms.length).toBeLessThanOrEqual(1);
    }
    // Slightly expired, or valid slightly later, by less than API_CLOCK_TOLERANCE_S (5 s).
    for (const claims of [
      { ...base(), iat: now() - 60, exp: now() - 2 },
      { ...base(), nbf: now() + 2 },
    ]) {
      const res = await p.fetch('/v1/rooms', { bearer: await handMade(claims) });
      expect(res.status).toBe(200);
    }
    // The token and the key's secret never come back, whatever happens.
    expect(p.api.process.output()).not.toContain(DEV_API_SECRET);
    expect(p.api.process.output()).not.toContain(SECOND_KEY.secret);
  });
});

describe('grants', () => {
  it("403 without the operation's grant, or for a room the token does not cover", async () => {
    await p.client().createRoom({ roomId: 'grant-a', emptyTimeoutS: null });
    await p.client().createRoom({ roomId: 'grant-b', emptyTimeoutS: null });
    const denied = async (
      grants: AdminGrants,
      call: (c: ReturnType<ApiPlatform['client']>) => Promise<unknown>,
    ) => {
      const err = await call(p.client(grants)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 403, errorName: 'PERMISSION_DENIED' });
    };
    // The grant is missing.
    await denied({ roomList: true, rooms: ['*'] }, (c) => c.createRoom({ roomId: 'grant-c' }));
    await denied({ roomCreate: true, rooms: ['*'] }, (c) => c.listRooms({}));
    await denied({ roomList: true, rooms: ['*'] }, (c) => c.deleteRoom({ roomId: 'grant-a' }));
    await denied({ roomCreate: true, rooms: ['*'] }, (c) =>
      c.callRoom({ roomId: 'grant-a', method: 'getClientStats', data: {} }),
    );
    // The room is not covered (the path's, or createRoom's body's).
    await denied({ roomList: true, roomAdmin: true, rooms: ['grant-a'] }, (c) =>
      c.getRoom({ roomId: 'grant-b' }),
    );
    await denied({ roomCreate: true, rooms: ['grant-*'] }, (c) =>
      c.createRoom({ roomId: 'other' }),
    );
    await denied({ roomAdmin: true }, (c) => c.getRoom({ roomId: 'grant-a' }));
    // Any one of a route's grants will do; a prefix covers.
    expect(
      (await p.client({ roomAdmin: true, rooms: ['grant-*'] }).getRoom({ roomId: 'grant-a' }))
        .roomId,
    ).toBe('grant-a');
    expect(
      (
        await p
          .client({ roomCreate: true, rooms: ['grant-a'] })
          .updateRoom({ roomId: 'grant-a', capacity: 7 })
      ).capacity,
    ).toBe(7);
  });

  it('lists only the rooms the token covers', async () => {
    for (const id of ['cover-1', 'cover-2', 'cover-3', 'uncovered-1']) {
      await p.client().createRoom({ roomId: id, emptyTimeoutS: null });
    }
    const some = await p
      .client({ roomList: true, rooms: ['cover-*', 'uncovered-9'] })
      .listRooms({});
    expect(some.rooms.map((r) => r.roomId)).toEqual(['cover-1', 'cover-2', 'cover-3']);
    const none = await p.client({ roomList: true }).listRooms({});
    expect(none.rooms).toEqual([]);
  });
});

describe('input', () => {
  const post = async (path: string, body: string, type = 'application/json'): Promise<Response> =>
    await p.fetch(path, { method: 'POST', body, headers: { 'content-type': type } });

  it('refuses what the schemas do not take: 400 naming the field, 413, 415', async () => {
    const cases: [string, Promise<Response>, number, keyof typeof ErrorCodes, RegExp][] = [
      ['a bad room id', p.fetch('/v1/rooms/bad%20room'), 400, 'JSON_FIELD_INVALID', /path\/roomId/],
      [
        'a room id too long',
        p.fetch(`/v1/rooms/${'r'.repeat(129)}`),
        400,
        'JSON_FIELD_INVALID',
        /path\/roomId/,
      ],
      [
        'a bad socketId',
        p.fetch('/v1/rooms/r/participants/not-a-socket'),
        400,
        'JSON_FIELD_INVALID',
        /path\/socketId/,
      ],
      ['not JSON', post('/v1/rooms', '{"roomId":'), 400, 'JSON', /not valid JSON/],
      ['an empty body', post('/v1/rooms', ''), 400, 'JSON', /empty/],
      ['no body', p.fetch('/v1/rooms', { method: 'POST' }), 400, 'JSON_FIELD_MISSING', /JSON body/],
      ['a missing field', post('/v1/rooms', '{}'), 400, 'JSON_FIELD_MISSING', /body\/roomId/],
      [
        'a wrong type',
        post('/v1/rooms', '{"roomId":"x","capacity":"ten"}'),
        400,
        'JSON_FIELD_INVALID',
        /body\/capacity/,
      ],
      [
        'out of range',
        post('/v1/rooms', '{"roomId":"x","capacity":0}'),
        400,
        'JSON_FIELD_INVALID',
        /body\/capacity/,
      ],
      [
        'an unknown field',
        post('/v1/rooms', '{"roomId":"x","colour":"red"}'),
        400,
        'JSON_FIELD_INVALID',
        /body\/colour: is not a known field/,
      ],
      ['an array body', post('/v1/rooms', '[]'), 400, 'JSON_FIELD_INVALID', /body/],
      [
        'an unknown query field',
        p.fetch('/v1/rooms?colour=red'),
        400,
        'JSON_FIELD_INVALID',
        /query\/colour: is not a known field/,
      ],
      [
        'a limit not a number',
        p.fetch('/v1/rooms?limit=ten'),
        400,
        'JSON_FIELD_INVALID',
        /query\/limit/,
      ],
      ['a limit of 0', p.fetch('/v1/rooms?limit=0'), 400, 'JSON_FIELD_INVALID', /query\/limit/],
      [
        'a limit over 1000',
        p.fetch('/v1/rooms?limit=1001'),
        400,
        'JSON_FIELD_INVALID',
        /query\/limit/,
      ],
      [
        'a limit twice',
        p.fetch('/v1/rooms?limit=1&limit=2'),
        400,
        'JSON_FIELD_INVALID',
        /query\/limit/,
      ],
      ['a bad after', p.fetch('/v1/rooms?after=a%20b'), 400, 'JSON_FIELD_INVALID', /query\/after/],
      [
        'a body where none is taken',
        p.fetch('/v1/rooms/r', {
          method: 'DELETE',
          body: '{}',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'JSON_FIELD_INVALID',
        /takes no body/,
      ],
      [
        'call data that fails its method',
        post('/v1/rooms/r/calls', '{"method":"requestMute","data":{"source":"nose"}}'),
        400,
        'JSON_FIELD_INVALID',
        /body\/data\/source/,
      ],
      [
        'an unknown call method',
        post('/v1/rooms/r/calls', '{"method":"reboot","data":{}}'),
        400,
        'JSON_FIELD_INVALID',
        /body\/method/,
      ],
      [
        'a body too big',
        post('/v1/rooms/r/data', JSON.stringify({ payload: 'x'.repeat(5000) })),
        413,
        'JSON',
        /larger than 4096 bytes/,
      ],
      [
        'not JSON at all',
        post('/v1/rooms', 'roomId=x', 'application/x-www-form-urlencoded'),
        415,
        'JSON',
        /application\/json/,
      ],
    ];
    for (const [what, request, status, name, message] of cases) {
      const r = await refusal(await request);
      expect(r, what).toMatchObject({ status, name, code: ErrorCodes[name].code });
      expect(r.message, what).toMatch(message);
    }
    // A limit as a string of digits is a number; an encoded room id is decoded.
    expect((await p.fetch('/v1/rooms?limit=2')).status).toBe(200);
    expect((await p.fetch('/v1/rooms/a%3Ab')).status).toBe(404);
  });

  it('answers 404 for an unknown path, 405 (with allow) for a method a path lacks', async () => {
    for (const path of ['/v2/rooms', '/v1/room', '/v1/rooms/r/unknown', '/']) {
      const r = await refusal(await p.fetch(path, { bearer: null }));
      expect(r, path).toMatchObject({ status: 404, name: 'UNKNOWN_ACTION' });
    }
    const put = await p.fetch('/v1/rooms/r', { method: 'PUT', bearer: null });
    expect(await refusal(put)).toMatchObject({ status: 405, name: 'UNKNOWN_ACTION' });
    expect(put.headers.get('allow')).toBe('GET, PATCH, DELETE');
    const del = await p.fetch('/v1/rooms', { method: 'DELETE', bearer: null });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('POST, GET');
    // HEAD is not an operation of the API either.
    expect((await p.fetch('/v1/rooms', { method: 'HEAD', bearer: null })).status).toBe(405);
  });

  it('sends no-store and the request id on every reply, and logs the request id', async () => {
    const replies = [
      await p.fetch('/v1/rooms', { headers: { 'x-request-id': 'trace-me-123' } }),
      await p.fetch('/v1/rooms', { bearer: null }),
      await p.fetch('/nowhere'),
      await p.fetch('/v1/rooms/r', { method: 'PUT' }),
      await p.fetch('/v1/rooms', { headers: { 'x-request-id': 'bad id with spaces' } }),
    ];
    for (const res of replies) {
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    }
    expect(replies[0]?.headers.get('x-request-id')).toBe('trace-me-123');
    expect(replies[4]?.headers.get('x-request-id')).not.toBe('bad id with spaces');
    await expect
      .poll(() => p.api.process.output())
      .toMatch(/"requestId":"trace-me-123".*"operation":"listRooms".*"keyId":"dev"/);
  });
});

describe('metrics and routes', () => {
  it('counts requests by operation and status, and times them', async () => {
    const before = await counter('sb_api_requests_total', { operation: 'getRoom', status: '404' });
    const r = await p.fetch('/v1/rooms/metrics-nowhere');
    expect(await refusal(r)).toMatchObject({ status: 404, name: 'ROOM_NOT_FOUND' });
    expect(await counter('sb_api_requests_total', { operation: 'getRoom', status: '404' })).toBe(
      before + 1,
    );
    const text = await p.api.metrics();
    expect(text).toMatch(
      /^sb_api_request_duration_seconds_count\{[^}]*operation="getRoom"[^}]*\} \d+/m,
    );
    expect(text).toMatch(
      /^sb_api_requests_total\{[^}]*operation="unknown"[^}]*status="404"[^}]*\} \d+/m,
    );
  });

  it('registers exactly the routes of docs/openapi.json, each behind authentication', async () => {
    const doc = JSON.parse(readFileSync(OPENAPI, 'utf8')) as {
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    const line = /"routes":(\[[^\]]*\]).*"msg":"server API routes registered"/.exec(
      p.api.process.output(),
    );
    const registered = JSON.parse(line?.[1] ?? '[]') as string[];
    expect(registered.sort()).toEqual(documented.sort());
    expect(registered).toHaveLength(API_OPERATIONS.length);
    /** Every route, its parameters filled in, answers a request with `bearer` with `status`. */
    const expectEveryRoute = async (bearer: string | null, status: number): Promise<void> => {
      for (const op of API_OPERATIONS) {
        const route = ApiRoutes[op];
        const path = route.path
          .replace('{roomId}', 'room-x')
          .replace('{socketId}', 'a'.repeat(32))
          .replace('{trackId}', '00000000-0000-4000-8000-000000000000');
        const res = await p.fetch(path, { method: route.method, bearer });
        expect(res.status, op).toBe(status);
      }
    };
    // Each answers (unauthenticated: 401), none is 404 or 405.
    await expectEveryRoute(null, 401);
    // And with a token whose grant no route needs, each is refused 403 before any work.
    const nothing = mintApiToken({
      keyId: DEV_API_KEY,
      secret: DEV_API_SECRET,
      grants: { rooms: ['*'] },
    });
    await expectEveryRoute(nothing, 403);
  });
});
