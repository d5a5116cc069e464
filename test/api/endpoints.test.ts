/**
 * Every endpoint of the server API, called with the SDK's ApiClient, with real clients in the
 * rooms (the wire-level test client) on two gateways and a media node: rooms created, read,
 * changed, listed a page at a time and deleted (members closed with 4005, unable to resume);
 * members listed, read, changed (peers told; new grants in force), removed (4004 and the
 * reason, unable to resume); data sent to all and to some; a real track muted; clients'
 * handlers called one at a time and room-wide.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ApiError } from '@switchboard/client/server';
import { mintToken } from '@switchboard/devstack';
import { CloseCodes, ErrorCodes, type WebRtcTransportInfo } from '@switchboard/protocol';
import { TestClient, type Frame } from '../signaling/client.ts';
import { CLIENT_STATS, sleep, waitUntil } from '../signaling/fixtures.ts';
import { startApi, type ApiPlatform } from './platform.ts';

let p: ApiPlatform;
const open: TestClient[] = [];

beforeAll(async () => {
  p = await startApi(inject('natsUrl'), inject('pgServerUrl'), {
    mediaNodes: 1,
    extraGateways: 1,
  });
});

afterAll(async () => {
  for (const c of open) c.kill();
  await p.stop();
});

const api = (): ReturnType<ApiPlatform['client']> => p.client();

async function join(
  gw: 0 | 1,
  room: string,
  user: string,
  claims: Record<string, unknown> = {},
): Promise<TestClient> {
  const c = await TestClient.join(p.sfu.gateways[gw]?.url ?? '', room, user, claims);
  open.push(c);
  return c;
}

/** The ApiError a call fails with. */
async function failure(call: Promise<unknown>): Promise<ApiError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return err;
}

/** Answer the next server request written to `c` (after frame `from`) with `d`. */
async function answerNext(c: TestClient, from: number, d: unknown): Promise<Frame> {
  const req = (await c.waitFor((f) => 'sid' in f, 10_000, 'a server request', from)) as Frame & {
    sid: number;
  };
  c.sendRaw(JSON.stringify({ a: `${req.a}R`, sid: req.sid, s: true, d }));
  return req;
}

describe('rooms', () => {
  it('creates (201, then 200 unchanged), reads, changes and lists them a page at a time', async () => {
    const made = await api().createRoom({
      roomId: 'ep-room-1',
      capacity: 2,
      emptyTimeoutS: null,
      metadata: '{"topic":"standup"}',
    });
    expect(made).toMatchObject({
      created: true,
      room: { roomId: 'ep-room-1', capacity: 2, capacitySet: true, roomSize: 0 },
    });
    // Created again: the existing room, unchanged, with 200.
    const res = await p.fetch('/v1/rooms', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ roomId: 'ep-room-1', capacity: 9 }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ created: false, room: { capacity: 2 } });
    const fresh = await p.fetch('/v1/rooms', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ roomId: 'ep-room-0', emptyTimeoutS: null }),
    });
    expect(fresh.status).toBe(201);

    expect(await api().getRoom({ roomId: 'ep-room-1' })).toMatchObject({
      metadata: '{"topic":"standup"}',
      emptyTimeoutS: null,
    });
    // Its capacity holds: a third member is refused.
    await join(0, 'ep-room-1', 'a');
    await join(1, 'ep-room-1', 'b');
    const third = await TestClient.connect(p.sfu.gateways[0]?.url ?? '');
    open.push(third);
    const bearer = await mintToken({ sub: 'c', rooms: ['ep-room-1'] });
    expect(
      await third.request('join', { roomId: 'ep-room-1', bearer, platform: 'Web' }),
    ).toMatchObject({ s: false, e: ErrorCodes.ROOM_IS_FULL.code });
    // Changed: capacity, metadata; null resets to the default.
    const changed = await api().updateRoom({ roomId: 'ep-room-1', capacity: 3, metadata: 'm2' });
    expect(changed).toMatchObject({ capacity: 3, metadata: 'm2', roomSize: 2 });
    expect(
      await third.request('join', { roomId: 'ep-room-1', bearer, platform: 'Web' }),
    ).toMatchObject({ s: true });
    const reset = await api().updateRoom({ roomId: 'ep-room-1', capacity: null, metadata: null });
    expect(reset).toMatchObject({ capacitySet: false, metadata: null });

    // Listed by id, a page at a time.
    for (let i = 2; i <= 6; i++) {
      await api().createRoom({ roomId: `ep-room-${String(i)}`, emptyTimeoutS: null });
    }
    const lister = p.client({ roomList: true, rooms: ['ep-room-*'] });
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await lister.listRooms({ limit: 2, ...(after === undefined ? {} : { after }) });
      expect(page.rooms.length).toBeLessThanOrEqual(2);
      seen.push(...page.rooms.map((r) => r.roomId));
      after = page.next;
      pages++;
    } while (after !== undefined && pages < 10);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `ep-room-${String(i)}`));
    expect(pages).toBe(4);
    // The default page (100) takes them all at once.
    expect((await lister.listRooms({})).rooms).toHaveLength(7);
    expect(await failure(api().getRoom({ roomId: 'ep-nowhere' }))).toMatchObject({
      status: 404,
      errorName: 'ROOM_NOT_FOUND',
    });
  });

  it('deletes a room: members closed with 4005 and unable to resume, the room gone (404)', async () => {
    const roomId = 'ep-delete';
    await api().createRoom({ roomId, emptyTimeoutS: null });
    const a = await join(0, roomId, 'a');
    const b = await join(1, roomId, 'b');
    expect(await api().deleteRoom({ roomId })).toEqual({ removed: 2 });
    for (const c of [a, b]) expect((await c.closed).code).toBe(CloseCodes.roomDeleted);
    const back = await TestClient.connect(p.sfu.gateways[0]?.url ?? '');
    open.push(back);
    expect(await back.resume(a)).toMatchObject({
      s: false,
      e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code,
    });
    expect(await failure(api().getRoom({ roomId }))).toMatchObject({ status: 404 });
    expect(await failure(api().deleteRoom({ roomId }))).toMatchObject({
      status: 404,
      errorName: 'ROOM_NOT_FOUND',
    });
  });
});

describe('participants', () => {
  it('lists (a page at a time) and reads members', async () => {
    const roomId = 'ep-members';
    const members = [
      await join(0, roomId, 'a', { name: 'Ada' }),
      await join(1, roomId, 'b'),
      await join(0, roomId, 'c'),
    ];
    const ids = members.map((m) => m.socketId ?? '').sort();
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 5; i++) {
      const page = await api().listParticipants({
        roomId,
        limit: 2,
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...page.participants.map((m) => m.socketId));
      after = page.next;
      if (after === undefined) break;
    }
    expect(seen).toEqual(ids);
    const ada = await api().getParticipant({ roomId, socketId: members[0]?.socketId ?? '' });
    expect(ada).toMatchObject({
      userId: 'a',
      name: 'Ada',
      state: 'active',
      platform: 'Web',
      tracks: [],
      grants: { publish: true, subscribe: true },
    });
    expect(await failure(api().getParticipant({ roomId, socketId: 'f'.repeat(32) }))).toMatchObject(
      { status: 404, errorName: 'SOCKET_ID_DOES_NOT_EXIST' },
    );
    expect(await failure(api().listParticipants({ roomId: 'ep-none' }))).toMatchObject({
      status: 404,
    });
  });

  it('changes a member: its peers told, its new grants in force at once', async () => {
    const roomId = 'ep-update';
    const alice = await join(0, roomId, 'alice');
    const bob = await join(1, roomId, 'bob');
    const changed = await api().updateParticipant({
      roomId,
      socketId: alice.socketId ?? '',
      name: 'Alice (muted)',
      metadata: '{"hand":false}',
      grants: { canPublish: false },
    });
    expect(changed).toMatchObject({
      name: 'Alice (muted)',
      metadata: '{"hand":false}',
      grants: { publish: false, subscribe: true },
    });
    expect((await bob.event('eventParticipantUpdated')).d).toEqual({
      socketId: alice.socketId,
      userId: 'alice',
      name: 'Alice (muted)',
      metadata: '{"hand":false}',
    });
    expect((await alice.event('eventParticipantUpdated')).d).toMatchObject({
      grants: { publish: false },
    });
    // Publishing is refused now.
    const produce = await alice.request('produce', {
      transportId: '00000000-0000-4000-8000-000000000000',
      kind: 'audio',
      rtpParameters: {
        codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
        encodings: [{ ssrc: 1111 }],
      },
      source: 'microphone',
    });
    expect(produce).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    // A grant the API may not give (hidden) is refused.
    expect(
      await failure(
        api().updateParticipant({ roomId, socketId: bob.socketId ?? '', grants: { hidden: true } }),
      ),
    ).toMatchObject({ status: 400 });
  });

  it('removes a member: closed with 4004 and the reason, unable to resume', async () => {
    const roomId = 'ep-remove';
    const alice = await join(0, roomId, 'alice');
    const bob = await join(1, roomId, 'bob');
    await expect(
      api().removeParticipant({ roomId, socketId: bob.socketId ?? '', reason: 'off topic' }),
    ).resolves.toBeUndefined();
    expect(await bob.closed).toEqual({ code: CloseCodes.removed, reason: 'off topic' });
    expect((await alice.event('eventLeave')).d).toMatchObject({ socketId: bob.socketId });
    const back = await TestClient.connect(p.sfu.gateways[1]?.url ?? '');
    open.push(back);
    expect(await back.resume(bob)).toMatchObject({
      s: false,
      e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code,
    });
    expect(
      await failure(api().removeParticipant({ roomId, socketId: bob.socketId ?? '' })),
    ).toMatchObject({ status: 404, errorName: 'SOCKET_ID_DOES_NOT_EXIST' });
    // Over plain HTTP: 204, no body.
    const res = await p.fetch(
      `/v1/rooms/${roomId}/participants/${alice.socketId ?? ''}?reason=${encodeURIComponent('the end')}`,
      { method: 'DELETE' },
    );
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect(await alice.closed).toEqual({ code: CloseCodes.removed, reason: 'the end' });
  });

  it('mutes a real track: the owner told, unable to resume it until unmuted', async () => {
    const roomId = 'ep-mute';
    const a = await join(0, roomId, 'publisher');
    await a.ok('getRouterRtpCapabilities');
    const send = (await a.ok('createWebRtcTransport', {
      direction: 'send',
    })) as WebRtcTransportInfo;
    const { id: trackId } = (await a.ok('produce', {
      transportId: send.id,
      kind: 'audio',
      rtpParameters: {
        mid: '1',
        codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
        encodings: [{ ssrc: 4242 }],
        rtcp: { cname: 'ep', reducedSize: true },
      },
      source: 'microphone',
    })) as { id: string };
    const socketId = a.socketId ?? '';
    await waitUntil(
      async () => (await api().getParticipant({ roomId, socketId })).tracks.length === 1,
    );
    expect(await api().muteTrack({ roomId, socketId, trackId, muted: true })).toMatchObject({
      trackId,
      kind: 'audio',
      source: 'microphone',
      muted: true,
    });
    expect((await a.event('eventProducerMuted')).d).toEqual({ producerId: trackId, muted: true });
    expect(await a.request('resumeProducer', { producerId: trackId })).toMatchObject({
      s: false,
      e: ErrorCodes.PERMISSION_DENIED.code,
    });
    expect((await api().muteTrack({ roomId, socketId, trackId, muted: false })).muted).toBe(false);
    expect(
      await failure(
        api().muteTrack({
          roomId,
          socketId,
          trackId: '00000000-0000-4000-8000-000000000000',
          muted: true,
        }),
      ),
    ).toMatchObject({ status: 404, errorName: 'MEDIA_NOT_FOUND' });
  });
});

describe('data and calls', () => {
  it('sends data to every member, or to some', async () => {
    const roomId = 'ep-data';
    const a = await join(0, roomId, 'a');
    const b = await join(1, roomId, 'b');
    expect(await api().sendData({ roomId, payload: 'hello all', topic: 'chat' })).toEqual({
      recipients: 2,
    });
    for (const c of [a, b]) {
      expect((await c.event('eventData')).d).toEqual({ payload: 'hello all', topic: 'chat' });
    }
    expect(
      await api().sendData({ roomId, payload: 'only b', socketIds: [b.socketId ?? ''] }),
    ).toEqual({ recipients: 1 });
    await b.waitFor(
      (f) => f.a === 'eventData' && (f.d as { payload: string }).payload === 'only b',
    );
    await sleep(300);
    expect(a.events('eventData')).toHaveLength(1);
    expect(await failure(api().sendData({ roomId: 'ep-none', payload: 'x' }))).toMatchObject({
      status: 404,
    });
  });

  it("calls a member's handler, and every member's: each one's reply or error", async () => {
    const roomId = 'ep-calls';
    const a = await join(0, roomId, 'answers');
    const b = await join(1, roomId, 'silent');
    // One member: its reply, validated, with who it is.
    let from = a.frames.length;
    const one = api().callParticipant({
      roomId,
      socketId: a.socketId ?? '',
      method: 'getClientStats',
      data: {},
      timeoutMs: 5000,
    });
    const req = await answerNext(a, from, CLIENT_STATS);
    expect(req).toMatchObject({ a: 'getClientStats', d: {} });
    expect(await one).toEqual({
      socketId: a.socketId,
      userId: 'answers',
      ok: true,
      data: CLIENT_STATS,
    });
    // A member that does not answer: TIMEOUT in the result (not an HTTP error).
    const silent = await api().callParticipant({
      roomId,
      socketId: b.socketId ?? '',
      method: 'requestMute',
      data: { source: 'microphone', reason: 'noise' },
      timeoutMs: 500,
    });
    expect(silent).toMatchObject({
      socketId: b.socketId,
      userId: 'silent',
      ok: false,
      error: { name: 'TIMEOUT', code: ErrorCodes.TIMEOUT.code },
    });
    // A member of another room, or none: 404.
    expect(
      await failure(
        api().callParticipant({
          roomId: 'ep-elsewhere',
          socketId: a.socketId ?? '',
          method: 'getClientStats',
          data: {},
        }),
      ),
    ).toMatchObject({ status: 404 });

    // The whole room: each member's own outcome.
    from = a.frames.length;
    const all = api().callRoom({ roomId, method: 'getClientStats', data: {}, timeoutMs: 1500 });
    await answerNext(a, from, CLIENT_STATS);
    const { results } = await all;
    expect(results.map((r) => [r.userId, r.ok]).sort()).toEqual([
      ['answers', true],
      ['silent', false],
    ]);
    expect(results.find((r) => r.userId === 'silent')).toMatchObject({
      error: { name: 'TIMEOUT' },
    });
    expect(
      await failure(api().callRoom({ roomId: 'ep-none', method: 'getClientStats', data: {} })),
    ).toMatchObject({ status: 404, errorName: 'ROOM_NOT_FOUND' });
  });
});

describe('shutdown', () => {
  it('lets requests in progress finish, refuses new ones, and cuts off what outlasts the grace', async () => {
    const roomId = 'ep-drain';
    const silent = await join(0, roomId, 'silent');
    const socketId = silent.socketId ?? '';
    const call = (url: string, timeoutMs: number): Promise<Response> =>
      fetch(`${url}/v1/rooms/${roomId}/participants/${socketId}/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${p.token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ method: 'getClientStats', data: {}, timeoutMs }),
      });

    // A request in progress when SIGTERM comes is answered in full.
    const api = await p.sfu.spawn('api', 'api-drain');
    const pending = call(api.url, 1500);
    await sleep(300);
    const stopped = api.stop();
    await waitUntil(async () => (await fetch(`${api.url}/readyz`)).status === 503);
    const refused = await fetch(`${api.url}/v1/rooms`, {
      headers: { authorization: `Bearer ${p.token()}` },
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { name: string } }).error.name).toBe(
      'SHUTTING_DOWN',
    );
    const finished = await pending;
    expect(finished.status).toBe(200);
    expect(await finished.json()).toMatchObject({ ok: false, error: { name: 'TIMEOUT' } });
    expect(await stopped).toBe(0);

    // One that would outlast the shutdown's grace (SHUTDOWN_TIMEOUT_MS less 3 s) is cut off.
    const quick = await p.sfu.spawn('api', 'api-cut', { SHUTDOWN_TIMEOUT_MS: '4000' });
    const long = call(quick.url, 30_000);
    await sleep(300);
    const started = Date.now();
    const exit = quick.stop();
    const cut = await long;
    expect(cut.status).toBe(503);
    expect(((await cut.json()) as { error: { name: string } }).error.name).toBe('SHUTTING_DOWN');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await exit).toBe(0);
  });
});
