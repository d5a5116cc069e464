/**
 * The SDK's Node side (`@switchboard/client/server`) against the running platform: a client
 * joins with a token mintClientToken signed (its claims what the gateway reads), API tokens
 * and the ApiClient's errors (ApiError: code, message, HTTP status, request id), deadlines,
 * cancellation, an unreachable API; bad input refused before anything is sent. And the
 * browser entry (`@switchboard/client`) never pulls the server side in.
 */
import { fileURLToPath } from 'node:url';
import { browserBundle } from '../e2e/page-server.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ApiClient, ApiError, mintApiToken, mintClientToken } from '@switchboard/client/server';
import { freePort } from '@switchboard/devstack';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  DEV_HS256_SECRET,
  ErrorCodes,
  type JoinReply,
} from '@switchboard/protocol';
import { TestClient } from '../signaling/client.ts';
import { ALL, startApi, type ApiPlatform } from './platform.ts';

let p: ApiPlatform;
const open: TestClient[] = [];

beforeAll(async () => {
  p = await startApi(inject('natsUrl'), inject('pgServerUrl'), { mediaNodes: 0 });
});

afterAll(async () => {
  for (const c of open) c.kill();
  await p.stop();
});

const gateway = (): string => p.sfu.gateways[0]?.url ?? '';

describe('mintClientToken', () => {
  it('signs a token the gateway takes: its user, rooms, name, metadata and grants', async () => {
    const token = (userId: string, extra: Partial<Parameters<typeof mintClientToken>[0]> = {}) =>
      mintClientToken({
        secret: DEV_HS256_SECRET,
        audience: 'switchboard',
        userId,
        rooms: ['sdk-*'],
        ttlS: 60,
        ...extra,
      });
    const a = await TestClient.connect(gateway());
    open.push(a);
    const joined = await a.request('join', {
      roomId: 'sdk-room',
      bearer: token('ada', { name: 'Ada', metadata: '{"role":"host"}' }),
      platform: 'Web',
    });
    expect(joined.s).toBe(true);
    const b = await TestClient.connect(gateway());
    open.push(b);
    const second = await b.request('join', {
      roomId: 'sdk-room',
      bearer: token('bob', { grants: { canPublish: false } }),
      platform: 'Web',
    });
    expect((second.d as JoinReply).sessions).toContainEqual(
      expect.objectContaining({ userId: 'ada', name: 'Ada', metadata: '{"role":"host"}' }),
    );
    const bob = await p
      .client()
      .getParticipant({ roomId: 'sdk-room', socketId: (second.d as JoinReply).socketId });
    expect(bob.grants).toMatchObject({ publish: false, subscribe: true });
    // A room the token does not name, another audience, an expired one: refused.
    const c = await TestClient.connect(gateway());
    open.push(c);
    for (const bearer of [
      token('c', { rooms: ['elsewhere'] }),
      token('c', { audience: 'someone-else' }),
      token('c', { ttlS: 1, notBeforeS: -120 }).replace(/\.[^.]+$/, '.x'),
    ]) {
      const r = await c.request('join', { roomId: 'sdk-room', bearer, platform: 'Web' });
      expect(r.s).toBe(false);
    }
  });

  it('refuses what would not be a valid token, before signing', () => {
    const base = { secret: DEV_HS256_SECRET, audience: 'switchboard', userId: 'u', ttlS: 60 };
    expect(() => mintClientToken({ ...base, secret: 'short' })).toThrow(/shorter than 32/);
    expect(() => mintClientToken({ ...base, ttlS: 0 })).toThrow(/ttlS/);
    expect(() => mintClientToken({ ...base, userId: '' })).toThrow(/sub/);
    expect(() => mintClientToken({ ...base, metadata: 'm'.repeat(5000) })).toThrow(/metadata/);
    expect(() => mintClientToken({ ...base, host: 'not a host' })).toThrow(/host/);
    expect(() => mintApiToken({ keyId: 'x', secret: DEV_API_SECRET, grants: ALL })).toThrow(/iss/);
    expect(() => mintApiToken({ keyId: 'dev', secret: 'short', grants: ALL })).toThrow(/32/);
  });
});

describe('ApiClient', () => {
  it('throws ApiError with the code, the message, the HTTP status and the request id', async () => {
    const err = await p
      .client()
      .getRoom({ roomId: 'sdk-nowhere' }, { requestId: 'sdk-req-1' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({
      status: 404,
      errorName: 'ROOM_NOT_FOUND',
      code: ErrorCodes.ROOM_NOT_FOUND.code,
      requestId: 'sdk-req-1',
    });
    // A key the API does not have: 401.
    const stranger = new ApiClient({
      url: p.url,
      keyId: 'stranger',
      secret: DEV_API_SECRET,
    });
    await expect(stranger.listRooms({})).rejects.toMatchObject({
      status: 401,
      errorName: 'AUTH_FAILED',
    });
    // Narrowed grants: 403.
    await expect(
      p
        .client()
        .withGrants({ roomList: true, rooms: ['*'] })
        .createRoom({ roomId: 'sdk-x' }),
    ).rejects.toMatchObject({ status: 403, errorName: 'PERMISSION_DENIED' });
  });

  it('keeps deadlines, can be cancelled, and says when the API is unreachable', async () => {
    const roomId = 'sdk-slow';
    const silent = await TestClient.join(gateway(), roomId, 'silent');
    open.push(silent);
    const api = p.client();
    // The member never answers: the request's own deadline passes first.
    const started = Date.now();
    await expect(
      api.callParticipant(
        { roomId, socketId: silent.socketId ?? '', method: 'getClientStats', data: {} },
        { timeoutMs: 300 },
      ),
    ).rejects.toMatchObject({ errorName: 'TIMEOUT', status: 0 });
    expect(Date.now() - started).toBeLessThan(3000);
    const ac = new AbortController();
    const pending = api.callRoom(
      { roomId, method: 'getClientStats', data: {}, timeoutMs: 10_000 },
      { signal: ac.signal },
    );
    setTimeout(() => {
      ac.abort();
    }, 100);
    await expect(pending).rejects.toMatchObject({ errorName: 'CANCELLED', status: 0 });
    const nowhere = new ApiClient({
      url: `http://127.0.0.1:${String(await freePort())}`,
      keyId: DEV_API_KEY,
      secret: DEV_API_SECRET,
    });
    await expect(nowhere.listRooms({})).rejects.toMatchObject({
      errorName: 'SERVICE_UNAVAILABLE',
      status: 0,
    });
    // Input the operation does not take is refused before anything is sent.
    await expect(api.getRoom({ roomId, colour: 'red' } as never)).rejects.toThrow(
      /unknown field colour/,
    );
  });

  it('reuses its token, and mints a new one before it expires', async () => {
    const api = new ApiClient({
      url: p.url,
      keyId: DEV_API_KEY,
      secret: DEV_API_SECRET,
      tokenTtlS: 8,
    });
    await api.listRooms({});
    await api.listRooms({});
    // Past the renewal point (a quarter of its life left, at least 5 s before it expires).
    await new Promise((r) => setTimeout(r, 3500));
    await api.listRooms({});
    await new Promise((r) => setTimeout(r, 5000));
    expect((await api.listRooms({ limit: 1 })).rooms.length).toBeLessThanOrEqual(1);
  });
});

describe('the browser entry', () => {
  it('@switchboard/client bundles for a browser without node: modules or the server side', async () => {
    const { code, imported } = await browserBundle(
      fileURLToPath(import.meta.resolve('@switchboard/client')),
    );
    expect(code).toContain('RoomMedia');
    expect([...imported].filter((s) => s.startsWith('node:'))).toEqual([]);
    expect([...imported].filter((s) => /server-tokens|api-client/.test(s))).toEqual([]);
    expect(code).not.toContain('mintApiToken');
    expect(code).not.toContain('createHmac');
  });
});
