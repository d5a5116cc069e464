/**
 * The room protocol end to end: clients on two gateway processes, the rooms service, the
 * real NATS and PostgreSQL. Joins, relays across gateways, reconnect through the other
 * gateway inside the window, expiry after it, capacity under concurrency, a killed
 * gateway, a restarted rooms service.
 */
import { execFile } from 'node:child_process';
import { join as joinPath } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { NODE, ROOT, ServiceProcess, mintToken, waitFor } from '@switchboard/devstack';
import {
  CloseCodes,
  DEV_API_KEY,
  DEV_API_SECRET,
  ErrorCodes,
  Rooms,
  RoomsAdmin,
  sessionGrants,
  signalingSubjects,
  type JoinReply,
  type Participant,
  type Room,
} from '@switchboard/protocol';
import { candidate, sdp, sleep } from './fixtures.ts';
import { TestClient, type Frame, joinVia } from './client.ts';
import { LADDER, TIMINGS, useSignaling, type SignalingPlatform } from './platform.ts';

const execFileP = promisify(execFile);
let sp: SignalingPlatform;
const open: TestClient[] = [];

useSignaling(open, (p) => {
  sp = p;
});

const join = joinVia(() => sp, open);

function media(size: number): unknown {
  const step = LADDER.find((s) => size <= s.maxSize) ?? LADDER[LADDER.length - 1];
  if (step === undefined) throw new Error('empty ladder');
  return {
    audio: true,
    video: {
      width: { max: step.width },
      height: { max: step.height },
      frameRate: { max: step.frameRate },
    },
  };
}

describe('two gateways, one room', () => {
  it('joins see each other and relay SDP and candidates both ways', async () => {
    const a = await join('gw1', 'room-relay', 'alice');
    const b = await join('gw2', 'room-relay', 'bob');
    const joinB = b.frames.find((f) => f.a === 'joinR');
    const replyB = joinB?.d as JoinReply;
    expect(replyB.roomSize).toBe(2);
    expect(replyB.sessions).toEqual([{ socketId: a.socketId, userId: 'alice' }]);
    expect(replyB.userMediaConfiguration).toEqual(media(2));
    expect(replyB.socketId).toMatch(/^[0-9a-f]{32}$/);
    expect(replyB.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Alice was alone (step 1) and is now one of two (step 2): she is told.
    const umc = await a.event('eventUserMediaConfiguration');
    expect(umc.d).toEqual(media(2));

    const offer = sdp('offer', 'a1');
    expect(await b.request('exchangeSdp', { to: a.socketId, sdp: offer })).toMatchObject({
      a: 'exchangeSdpR',
      s: true,
    });
    const gotOffer = await a.event('eventExchangeSdp');
    expect(gotOffer.d).toEqual({ from: { socketId: b.socketId, userId: 'bob' }, sdp: offer });

    // The SDP as JSON text (older clients) arrives as the object.
    const answer = sdp('answer', 'b1');
    expect(
      (await a.request('exchangeSdp', { to: b.socketId, sdp: JSON.stringify(answer) })).s,
    ).toBe(true);
    expect((await b.event('eventExchangeSdp')).d).toEqual({
      from: { socketId: a.socketId, userId: 'alice' },
      sdp: answer,
    });

    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        expect(
          (await from.request('exchangeCandidate', { to: to.socketId, candidate: candidate(i) })).s,
        ).toBe(true);
      }
      await to.waitFor(
        () => to.events('eventExchangeCandidate').length === 3,
        5000,
        '3 candidates',
      );
      expect(to.events('eventExchangeCandidate').map((f) => f.d)).toEqual(
        [0, 1, 2].map((i) => ({
          from: { socketId: from.socketId, userId: from.userId },
          candidate: candidate(i),
        })),
      );
    }

    // Orientation goes to the others, with the sender's platform.
    expect((await a.request('orientationChange', { orientation: 180, camera: 'back' })).s).toBe(
      true,
    );
    expect((await b.event('eventOrientationChange')).d).toEqual({
      from: { socketId: a.socketId, userId: 'alice' },
      platform: 'Web',
      orientation: 180,
      camera: 'back',
    });
    expect(a.events('eventOrientationChange')).toEqual([]);

    // A freeze reaches the peers; CPU is recorded.
    a.sendRaw(JSON.stringify({ a: 'eventFreeze' }));
    expect((await b.event('eventFreeze')).d).toEqual({
      from: { socketId: a.socketId, userId: 'alice' },
    });
    a.sendRaw(JSON.stringify({ a: 'eventCpu', d: { cpuUsed: 42 } }));

    const metrics = await (await fetch(`${sp.gw1.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/sb_gateway_sessions\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/sb_gateway_rooms\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(
      /sb_gateway_requests_total\{[^}]*action="exchangeSdp"[^}]*outcome="ok"/,
    );

    // Requests without an id get replies without one, exactly as in the document.
    a.sendRaw(
      JSON.stringify({ a: 'exchangeCandidate', d: { to: b.socketId, candidate: candidate(9) } }),
    );
    const plain = await a.waitFor((f) => f.a === 'exchangeCandidateR' && f.id === undefined);
    expect(plain).toEqual({ a: 'exchangeCandidateR', s: true });

    a.close();
    b.close();
  });

  it('relays never cross rooms and need a join first', async () => {
    const a = await join('gw1', 'room-x', 'xavier');
    const b = await join('gw2', 'room-y', 'yvonne');
    const r = await a.request('exchangeSdp', { to: b.socketId, sdp: sdp('offer', 'x') });
    expect(r).toMatchObject({ s: false, e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code });
    expect(b.events('eventExchangeSdp')).toEqual([]);
    // The same on one gateway (where relays skip NATS).
    const c = await join('gw1', 'room-y', 'yann');
    const r2 = await a.request('exchangeCandidate', { to: c.socketId, candidate: candidate(7) });
    expect(r2).toMatchObject({ s: false, e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code });
    expect(c.events('eventExchangeCandidate')).toEqual([]);
    c.close();

    const fresh = await TestClient.connect(sp.gw1.url);
    open.push(fresh);
    expect(
      await fresh.request('exchangeCandidate', { to: b.socketId, candidate: candidate(1) }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.USER_NOT_AUTHENTICATED.code,
    });
    a.close();
    b.close();
    fresh.close();
  });
});

describe('reconnect', () => {
  it('through the other gateway inside the window: no eventLeave, relays work', async () => {
    const a = await join('gw1', 'room-rc', 'ann');
    const b = await join('gw2', 'room-rc', 'ben');
    const socketA = a.socketId;
    a.kill(); // no close handshake: the network went away
    await sleep(500);

    const a2 = await TestClient.connect(sp.gw2.url);
    open.push(a2);
    const r = await a2.resume(a);
    expect(r).toMatchObject({ a: 'reconnectR', s: true, d: { roomSize: 2 } });

    expect((await b.request('exchangeSdp', { to: socketA, sdp: sdp('offer', 'again') })).s).toBe(
      true,
    );
    expect((await a2.event('eventExchangeSdp')).d).toMatchObject({
      from: { socketId: b.socketId },
    });
    expect(
      (await a2.request('exchangeCandidate', { to: b.socketId, candidate: candidate(5) })).s,
    ).toBe(true);
    expect((await b.event('eventExchangeCandidate')).d).toMatchObject({
      from: { socketId: socketA, userId: 'ann' },
    });

    // Well past the window: still no eventLeave.
    await sleep(TIMINGS.RECONNECT_WINDOW_MS + 1000);
    expect(b.events('eventLeave')).toEqual([]);
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-rc' });
    expect(info.sessions.map((s) => [s.socketId, s.state])).toEqual([
      [socketA, 'active'],
      [b.socketId, 'active'],
    ]);
    a2.close();
    b.close();
  });

  it('a new connection claiming a socketId still attached replaces the stale one', async () => {
    const a = await join('gw1', 'room-stale', 'amy');
    const b = await join('gw1', 'room-stale', 'bo');
    const a2 = await TestClient.connect(sp.gw2.url);
    open.push(a2);
    expect((await a2.resume(a)).s).toBe(true);
    expect(await a.closed).toEqual({ code: 4001, reason: 'session reconnected elsewhere' });
    // Relays now reach the new socket only.
    expect((await b.request('exchangeSdp', { to: a.socketId, sdp: sdp('offer', 's') })).s).toBe(
      true,
    );
    await a2.event('eventExchangeSdp');
    await sleep(TIMINGS.RECONNECT_WINDOW_MS + 500);
    expect(b.events('eventLeave')).toEqual([]);

    // An unknown socketId, and a second reconnect on a joined connection, are refused.
    const c = await TestClient.connect(sp.gw1.url);
    open.push(c);
    expect(
      await c.request('reconnect', { socketId: 'f'.repeat(32), resumeToken: 'x'.repeat(43) }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code,
    });
    expect(await a2.resume(b)).toMatchObject({
      s: false,
      e: ErrorCodes.ROOM_ALREADY_JOINED.code,
    });
    a2.close();
    b.close();
    c.close();
  });

  it('one that drops for good leaves after the window; the room is told', async () => {
    const a = await join('gw1', 'room-gone', 'al');
    const b = await join('gw2', 'room-gone', 'bea');
    const dropped = Date.now();
    const umcBefore = b.events('eventUserMediaConfiguration').length;
    b.kill();
    const leave = await a.event('eventLeave', TIMINGS.RECONNECT_WINDOW_MS + 5000);
    const waited = Date.now() - dropped;
    expect(waited).toBeGreaterThanOrEqual(TIMINGS.RECONNECT_WINDOW_MS - 100);
    expect(leave.d).toEqual({
      roomId: 'room-gone',
      roomSize: 1,
      socketId: b.socketId,
      userId: 'bea',
    });
    // Two → one crosses a ladder step: the one left gets the new constraints.
    const umc = await a.waitFor(
      (f) =>
        f.a === 'eventUserMediaConfiguration' &&
        (f.d as { video: { width: { max: number } } }).video.width.max === 1280,
    );
    expect(umc.d).toEqual(media(1));
    expect(umcBefore).toBe(0);
    const metrics = await (await fetch(`${sp.platform.get('rooms').opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/sb_rooms_sessions_ended_total\{[^}]*reason="expired"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/sb_rooms_sessions\{[^}]*state="active"[^}]*\} [1-9]/);
    // The socketId is gone for good.
    const late = await TestClient.connect(sp.gw2.url);
    open.push(late);
    expect(await late.resume(b)).toMatchObject({
      s: false,
      e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code,
    });
    a.close();
    late.close();
  });

  it('a normal close (1000) leaves at once', async () => {
    const a = await join('gw1', 'room-bye', 'ada');
    const b = await join('gw2', 'room-bye', 'bill');
    const started = Date.now();
    b.close(1000);
    const leave = await a.event('eventLeave', 5000);
    expect(Date.now() - started).toBeLessThan(TIMINGS.RECONNECT_WINDOW_MS);
    expect(leave.d).toMatchObject({ roomSize: 1, socketId: b.socketId });
    a.close();
  });
});

describe('membership rules', () => {
  it('twenty concurrent joins into a room of capacity 10 admit exactly 10', async () => {
    await sp.bus.request(RoomsAdmin.createRoom, { roomId: 'room-cap', capacity: 10 });
    // Two rooms replicas share the requests: the database alone keeps the count.
    const replica = await sp.spawn('rooms', 'rooms-replica');
    const clients = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const c = await TestClient.connect(i % 2 === 0 ? sp.gw1.url : sp.gw2.url);
        open.push(c);
        return c;
      }),
    );
    const tokens = await Promise.all(
      clients.map(async (_, i) => await mintToken({ sub: `u${i}`, rooms: ['room-cap'] })),
    );
    const replies: Frame[] = await Promise.all(
      clients.map(
        async (c, i) =>
          await c.request('join', { roomId: 'room-cap', bearer: tokens[i], platform: 'Web' }),
      ),
    );
    const ok = replies.filter((r) => r.s === true);
    const served = await Promise.all(
      [sp.platform.get('rooms'), replica].map(async (r) => {
        const m = await (await fetch(`${r.opsUrl}/metrics`)).text();
        return /sb_bus_served_requests_total\{[^}]*method="rooms\.join"[^}]*\} (\d+)/.exec(m)?.[1];
      }),
    );
    expect(served.every((n) => n !== undefined && Number(n) > 0)).toBe(true);
    expect(await replica.stop()).toBe(0);
    const full = replies.filter((r) => r.s === false);
    expect(ok).toHaveLength(10);
    expect(full.every((r) => r.e === ErrorCodes.ROOM_IS_FULL.code)).toBe(true);
    expect(new Set(ok.map((r) => (r.d as JoinReply).roomSize))).toEqual(
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    );
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-cap' });
    expect(info).toMatchObject({ capacity: 10, roomSize: 10 });
    expect(new Set(info.sessions.map((s) => s.socketId))).toEqual(
      new Set(ok.map((r) => (r.d as JoinReply).socketId)),
    );

    // A second join on a joined connection.
    const joined = clients[replies.indexOf(ok[0] as Frame)] as TestClient;
    expect(
      await joined.request('join', { roomId: 'room-cap', bearer: tokens[0], platform: 'Web' }),
    ).toMatchObject({ s: false, e: ErrorCodes.ROOM_ALREADY_JOINED.code });

    // The size the room's row keeps is its sessions, through refused joins and leaves.
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    try {
      const sizes = async (): Promise<{ kept: number | undefined; counted: number }> => {
        const r = await db.query<{ kept: number | null; counted: number }>(
          `SELECT (SELECT size FROM rooms WHERE id = $1) AS kept,
                  (SELECT count(*)::int FROM sessions WHERE room_id = $1) AS counted`,
          ['room-cap'],
        );
        const row = r.rows[0];
        return { kept: row?.kept ?? undefined, counted: row?.counted ?? -1 };
      };
      expect(await sizes()).toEqual({ kept: 10, counted: 10 });
      const members = clients.filter((_, i) => replies[i]?.s === true);
      for (const c of members.slice(0, 5)) c.close();
      await waitFor('5 sessions left', async () => (await sizes()).counted === 5);
      expect(await sizes()).toEqual({ kept: 5, counted: 5 });
      for (const c of clients) c.close();
      await waitFor('every session left', async () => (await sizes()).counted === 0);
      // Empty now (and gone, if its empty timeout closed it).
      expect((await sizes()).kept ?? 0).toBe(0);
    } finally {
      await db.end();
    }
  });

  it("operators set a room's capacity with the admin command (through the server API)", async () => {
    const api = await sp.spawn('api', 'api-admin');
    const admin = async (...args: string[]): Promise<{ code: number; out: string }> => {
      try {
        const { stdout } = await execFileP(
          NODE,
          [joinPath(ROOT, 'services/rooms/src/admin.ts'), ...args],
          {
            // The operator's API key (the development one of the test platform).
            env: {
              ...process.env,
              SWITCHBOARD_API_URL: api.url,
              SWITCHBOARD_API_KEY: DEV_API_KEY,
              SWITCHBOARD_API_SECRET: DEV_API_SECRET,
            },
          },
        );
        return { code: 0, out: stdout };
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        return { code: e.code ?? -1, out: e.stderr ?? '' };
      }
    };
    try {
      // A room that does not exist yet is made with the capacity.
      const set = await admin('capacity', 'room-admin', '2');
      expect(set.code).toBe(0);
      expect(JSON.parse(set.out)).toMatchObject({
        roomId: 'room-admin',
        capacity: 2,
        capacitySet: true,
        emptyTimeoutS: null,
        roomSize: 0,
        mediaNodeId: null,
      });
      const a = await join('gw1', 'room-admin', 'one');
      await join('gw2', 'room-admin', 'two');
      const third = await TestClient.connect(sp.gw1.url);
      open.push(third);
      const bearer = await mintToken({ sub: 'three', rooms: ['room-admin'] });
      expect(
        await third.request('join', { roomId: 'room-admin', bearer, platform: 'Web' }),
      ).toMatchObject({
        s: false,
        e: ErrorCodes.ROOM_IS_FULL.code,
      });
      const shown = JSON.parse((await admin('room', 'room-admin')).out) as {
        room: Room;
        participants: Participant[];
      };
      expect(shown.room).toMatchObject({ roomId: 'room-admin', capacity: 2, roomSize: 2 });
      expect(
        shown.participants
          .map((s) => [s.userId, s.state])
          .sort(([x], [y]) => String(x).localeCompare(String(y))),
      ).toEqual([
        ['one', 'active'],
        ['two', 'active'],
      ]);
      expect(shown.participants.map((s) => s.socketId)).toContain(a.socketId);
      expect((await admin('capacity', 'room-admin', 'default')).code).toBe(0);
      expect(
        (await third.request('join', { roomId: 'room-admin', bearer, platform: 'Web' })).s,
      ).toBe(true);
      const rooms = JSON.parse((await admin('rooms', 'room-adm*')).out) as Room[];
      expect(rooms.map((r) => r.roomId)).toEqual(['room-admin']);
      // Bad usage: 2; a request refused: 1.
      expect((await admin('capacity', 'room admin', '3')).code).toBe(2);
      expect((await admin('capacity', 'room-admin', '-3')).code).toBe(2);
      expect((await admin('kick', 'room-admin', 'not-a-socket')).code).toBe(2);
      expect((await admin('delete', 'no-such-room')).code).toBe(1);
      // A member kicked, then the room deleted.
      expect((await admin('kick', 'room-admin', a.socketId ?? '', 'bye', 'now')).code).toBe(0);
      expect(await a.closed).toEqual({ code: CloseCodes.removed, reason: 'bye now' });
      expect(JSON.parse((await admin('delete', 'room-admin')).out)).toEqual({ removed: 2 });
    } finally {
      await api.stop();
    }
  });

  it('records the client address, from X-Forwarded-For only behind a trusted proxy', async () => {
    const trusting = await sp.spawn('gateway', 'gateway-proxied');
    const proxied = await ServiceProcess.start(
      'gateway',
      { ...sp.platform.env, HTTP_TRUST_PROXY: '127.0.0.1/8' },
      { label: 'gateway-trusts-proxy' },
    );
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    try {
      await proxied.waitReady();
      const ipOf = async (gatewayUrl: string, user: string): Promise<string | null> => {
        const ws = new WebSocket(`${gatewayUrl.replace(/^http/, 'ws')}/api`, {
          headers: { 'x-forwarded-for': '203.0.113.7' },
        });
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        const reply = new Promise<JoinReply>((resolve) =>
          ws.once('message', (m: Buffer) => {
            resolve((JSON.parse(m.toString('utf8')) as { d: JoinReply }).d);
          }),
        );
        const bearer = await mintToken({ sub: user, rooms: ['room-ip'] });
        ws.send(JSON.stringify({ a: 'join', d: { roomId: 'room-ip', bearer, platform: 'Web' } }));
        const { socketId } = await reply;
        const r = await db.query<{ ip: string | null }>(
          'SELECT ip FROM sessions WHERE socket_id = $1',
          [socketId],
        );
        ws.close(1000);
        return r.rows[0]?.ip ?? null;
      };
      expect(await ipOf(trusting.url, 'direct')).toBe('127.0.0.1');
      expect(await ipOf(proxied.url, 'behind-proxy')).toBe('203.0.113.7');
    } finally {
      await db.end();
      await proxied.stop();
      await trusting.stop();
    }
  });

  it("a join racing the last member's leave always gets in", async () => {
    for (let i = 0; i < 15; i++) {
      const roomId = `room-race-${i}`;
      const last = await join('gw1', roomId, 'last');
      const next = await TestClient.connect(sp.gw2.url);
      open.push(next);
      const bearer = await mintToken({ sub: 'next', rooms: [roomId] });
      last.close(1000);
      const r = await next.request('join', { roomId, bearer, platform: 'Web' });
      expect(r, `iteration ${i}`).toMatchObject({ s: true });
      next.close();
    }
  });

  it('tokens decide who joins which room', async () => {
    const c = await TestClient.connect(sp.gw1.url);
    open.push(c);
    const other = await mintToken({ sub: 'eve', rooms: ['room-other'] });
    expect(
      await c.request('join', { roomId: 'room-secret', bearer: other, platform: 'Web' }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.ROOM_IS_NOT_JOINABLE.code,
    });
    const expired = await mintToken({ sub: 'eve', rooms: ['*'], expiresInS: -60 });
    expect(
      await c.request('join', { roomId: 'room-secret', bearer: expired, platform: 'Web' }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.AUTH_FAILED.code,
    });
    const forged = await mintToken({ sub: 'eve', rooms: ['*'], secret: 'x'.repeat(40) });
    expect(
      await c.request('join', { roomId: 'room-secret', bearer: forged, platform: 'Web' }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.AUTH_FAILED.code,
    });
    // After failures the connection can still join.
    const good = await mintToken({ sub: 'eve', rooms: ['room-*'] });
    expect(
      (await c.request('join', { roomId: 'room-secret', bearer: good, platform: 'Web' })).s,
    ).toBe(true);
    c.close();
  });
});

describe('bad messages on the bus', () => {
  it('reach no client, break no process, and requests among them get an error reply', async () => {
    const a = await join('gw1', 'room-bus-junk', 'ann');
    const b = await join('gw2', 'room-bus-junk', 'bob');
    const nc = sp.bus.connection;
    if (nc === undefined || a.socketId === undefined || b.socketId === undefined) {
      throw new Error('not ready');
    }
    const p = sp.platform.env['NATS_SUBJECT_PREFIX'] ?? '';
    const junk = ['not json', '{}', '[]', '{"roomId":"room-bus-junk","event":{"a":"eventNope"}}'];
    const gateways = (
      await sp.bus.request(Rooms.roomInfo, { roomId: 'room-bus-junk' })
    ).sessions.map((s) => s.gatewayId);
    const subjectsToHit = [
      signalingSubjects.room(p, 'room-bus-junk'),
      ...gateways.map((g) => signalingSubjects.gatewayControl(p, g)),
      signalingSubjects.heartbeat(p),
      signalingSubjects.telemetryCpu(p),
    ];
    for (const subject of subjectsToHit) for (const j of junk) nc.publish(subject, j);
    // A broadcast of another room's id on this room's subject is not delivered either.
    nc.publish(
      signalingSubjects.room(p, 'room-bus-junk'),
      JSON.stringify({
        roomId: 'room-elsewhere',
        event: { a: 'eventFreeze', d: { from: { socketId: a.socketId, userId: 'ann' } } },
      }),
    );
    // A well-formed detach naming another connection of the socket closes nothing.
    for (const g of gateways) {
      nc.publish(
        signalingSubjects.gatewayControl(p, g),
        JSON.stringify({
          type: 'detach',
          socketId: a.socketId,
          connectionId: '0'.repeat(32),
          reason: 'expired',
        }),
      );
    }
    // Requests with bad payloads get an error reply, not silence.
    for (const j of junk) {
      const reply = await nc.request(signalingSubjects.socket(p, b.socketId, 'room-bus-junk'), j, {
        timeout: 2000,
      });
      expect(reply.json()).toMatchObject({ ok: false });
      const rooms = await nc.request(`${p}.rooms.rpc.join`, j, { timeout: 2000 });
      expect(rooms.json()).toMatchObject({ ok: false });
    }
    await sleep(300);
    // Nothing reached the clients; everything still works.
    for (const c of [a, b]) {
      expect(
        c.frames.filter(
          (f) => f.s === undefined && f.a !== 'eventUserMediaConfiguration' && f.a !== 'eventJoin',
        ),
      ).toEqual([]);
    }
    expect((await a.request('exchangeSdp', { to: b.socketId, sdp: sdp('offer', 'after') })).s).toBe(
      true,
    );
    await b.event('eventExchangeSdp');
    for (const svc of [sp.gw1, sp.gw2, sp.platform.get('rooms')])
      expect(svc.process.running).toBe(true);
    a.close();
    b.close();
  });
});

describe('failures', () => {
  it('a killed gateway: its sessions expire after the window and everyone else is told', async () => {
    const gw3 = await sp.spawn('gateway', 'gateway-3');
    const a = await join('gw1', 'room-crash', 'ali');
    const b = await TestClient.join(gw3.url, 'room-crash', 'bert');
    open.push(b);
    const c = await join('gw2', 'room-crash', 'cleo');
    await gw3.process.kill();
    const killed = Date.now();
    const leaveA = await a.event(
      'eventLeave',
      TIMINGS.GATEWAY_DEAD_AFTER_MS + TIMINGS.RECONNECT_WINDOW_MS + 8000,
    );
    const leaveC = await c.event('eventLeave', 2000);
    expect(Date.now() - killed).toBeGreaterThanOrEqual(TIMINGS.RECONNECT_WINDOW_MS - 1000);
    for (const l of [leaveA, leaveC]) {
      expect(l.d).toEqual({
        roomId: 'room-crash',
        roomSize: 2,
        socketId: b.socketId,
        userId: 'bert',
      });
    }
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-crash' });
    expect(info.sessions.map((s) => s.userId)).toEqual(['ali', 'cleo']);
    a.close();
    c.close();
  });

  it('a gateway restarted at once under the same INSTANCE_ID: its old sessions are not kept', async () => {
    const env = { ...sp.platform.env, INSTANCE_ID: 'gw-fixed' };
    const first = await ServiceProcess.start('gateway', env, { label: 'gw-fixed' });
    await first.waitReady();
    const a = await join('gw1', 'room-restart', 'stay');
    const b = await TestClient.join(first.url, 'room-restart', 'lost');
    open.push(b);
    await first.process.kill();
    const second = await ServiceProcess.start('gateway', env, { label: 'gw-fixed-2' });
    try {
      await second.waitReady();
      // Its heartbeats never stopped for long, yet the session it had is gone after the window.
      const leave = await a.event('eventLeave', TIMINGS.RECONNECT_WINDOW_MS + 5000);
      expect(leave.d).toMatchObject({ socketId: b.socketId, roomSize: 1 });
      expect(sp.platform.get('rooms').process.output()).toMatch(
        /"gatewayId":"gw-fixed".*gateway restarted/,
      );
    } finally {
      await second.stop();
    }
    a.close();
  });

  it("a restarted gateway's old sessions are told from its new ones by its own clock, however skewed", async () => {
    // A gateway (played by the test) whose clock is an hour behind the database's: only its
    // own startedAt values are compared, so the skew changes nothing.
    const gatewayId = 'gw-skewed';
    const first = Date.now() - 3_600_000;
    const beat = (startedAt: number): void => {
      sp.bus.publish(signalingSubjects.heartbeat(sp.bus.prefix), {
        gatewayId,
        startedAt,
        sockets: 1,
      });
    };
    const joinAs = async (n: number, gatewayStartedAt: number) =>
      await sp.bus.request(Rooms.join, {
        socketId: `5e${n.toString(16).padStart(30, '0')}`,
        connectionId: `c${n.toString(16).padStart(31, '0')}`,
        gatewayId,
        gatewayStartedAt,
        roomId: 'room-skew',
        userId: `skew-${n}`,
        platform: 'Web',
        resumeHash: 'd'.repeat(64),
        tokenExpiresAt: Date.now() + 3_600_000,
        grants: sessionGrants(undefined),
      });
    const states = async (): Promise<Record<string, string>> => {
      const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-skew' });
      return Object.fromEntries(info.sessions.map((x) => [x.userId, x.state]));
    };
    beat(first);
    const old = await joinAs(1, first);
    // The process restarts; its first session is admitted before its first heartbeat lands.
    const second = first + 5000;
    const fresh = await joinAs(2, second);
    beat(second);
    await waitFor('the restart seen', async () => (await states())['skew-1'] === 'disconnected');
    expect(await states()).toEqual({ 'skew-1': 'disconnected', 'skew-2': 'active' });
    // A late heartbeat of the replaced process changes nothing.
    beat(first);
    await sleep(500);
    expect(await states()).toEqual({ 'skew-1': 'disconnected', 'skew-2': 'active' });
    for (const [n, r] of [
      [1, old],
      [2, fresh],
    ] as const) {
      await sp.bus.request(Rooms.disconnect, {
        socketId: r.socketId,
        connectionId: `c${n.toString(16).padStart(31, '0')}`,
        leave: true,
      });
    }
  });

  it('a gateway shutting down closes its sockets with 1012; their sessions wait for them', async () => {
    const gw4 = await sp.spawn('gateway', 'gateway-4');
    const a = await join('gw1', 'room-drain', 'ida');
    const b = await TestClient.join(gw4.url, 'room-drain', 'jon');
    open.push(b);
    const stopped = gw4.stop();
    expect(await b.closed).toEqual({ code: 1012, reason: 'gateway shutting down' });
    expect(await stopped).toBe(0);
    // The rooms service heard of it before the gateway exited: the session is waiting.
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'room-drain' });
    expect(info.sessions.find((s) => s.socketId === b.socketId)?.state).toBe('disconnected');
    const b2 = await TestClient.connect(sp.gw2.url);
    open.push(b2);
    expect(await b2.resume(b)).toMatchObject({
      s: true,
      d: { roomSize: 2 },
    });
    await sleep(TIMINGS.RECONNECT_WINDOW_MS + 500);
    expect(a.events('eventLeave')).toEqual([]);
    a.close();
    b2.close();
  });

  it('the rooms service restarts: requests during the outage get a clear error, later ones work', async () => {
    const a = await join('gw1', 'room-outage', 'oli');
    const d = await join('gw1', 'room-outage', 'dan');
    const rooms = sp.platform.get('rooms');
    expect(await rooms.stop()).toBe(0);

    const c = await TestClient.connect(sp.gw2.url);
    open.push(c);
    const bearer = await mintToken({ sub: 'pat', rooms: ['room-outage'] });
    expect(
      await c.request('join', { roomId: 'room-outage', bearer, platform: 'Web' }),
    ).toMatchObject({
      s: false,
      e: ErrorCodes.SERVICE_UNAVAILABLE.code,
    });
    expect(await a.request('orientationChange', { orientation: 0, camera: 'front' })).toMatchObject(
      {
        s: false,
        e: ErrorCodes.SERVICE_UNAVAILABLE.code,
      },
    );
    // A client that leaves during the outage is not lost: its disconnect waits for rooms.
    d.close(1000);
    await d.closed;

    await sp.spawn('rooms', 'rooms-2');
    expect((await a.event('eventLeave', 10_000)).d).toMatchObject({
      socketId: d.socketId,
      roomSize: 1,
    });
    expect((await c.request('join', { roomId: 'room-outage', bearer, platform: 'Web' })).s).toBe(
      true,
    );
    expect((await a.request('orientationChange', { orientation: 0, camera: 'front' })).s).toBe(
      true,
    );
    a.close();
    c.close();
  });
});
