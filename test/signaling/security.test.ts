/**
 * Sessions belong to their owner and tokens keep mattering after `join`, tried from outside
 * as an attacker would, against the running platform (two gateways, the rooms service, real
 * NATS and PostgreSQL):
 *
 * - a socketId — which every member of a room learns — resumes nothing without the session's
 *   resume token; a resume token works once; the owner is never disturbed by a failed try;
 * - the rooms service keeps only the token's hash, and no reply to anyone else carries it;
 * - a session whose token expires is cut (4003) and leaves; `refreshToken` keeps it;
 *   tokens living longer than AUTH_MAX_TOKEN_TTL_S are refused;
 * - grants (publish, sources, subscribe, data, hidden, plain-RTP roles) refused with
 *   PERMISSION_DENIED where the action lands, and at most ROOM_MAX_SESSIONS_PER_USER seats.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { mintToken, waitFor, type ServiceProcess } from '@switchboard/devstack';
import { ErrorCodes, Rooms, type JoinReply } from '@switchboard/protocol';
import { TestClient, joinVia } from './client.ts';
import { sdp, sleep } from './fixtures.ts';
import { TIMINGS, useSignaling, type SignalingPlatform } from './platform.ts';

const E = {
  AUTH_FAILED: ErrorCodes.AUTH_FAILED.code,
  PERMISSION_DENIED: ErrorCodes.PERMISSION_DENIED.code,
  TOO_MANY_SESSIONS: ErrorCodes.TOO_MANY_SESSIONS.code,
};
const MAX_TTL_S = 7200;

let sp: SignalingPlatform;
let legacy: ServiceProcess;
const open: TestClient[] = [];

useSignaling(
  open,
  async (p) => {
    sp = p;
    legacy = await sp.spawn('gateway', 'gateway-legacy', {
      AUTH_CLOCK_TOLERANCE_S: '0',
      GATEWAY_LEGACY_RESUME: 'true',
    });
  },
  {
    AUTH_CLOCK_TOLERANCE_S: '0',
    AUTH_MAX_TOKEN_TTL_S: String(MAX_TTL_S),
  },
);

const join = joinVia(() => sp, open);

async function connect(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  open.push(c);
  return c;
}

/** A join with a bearer of our own making; the reply frame. */
async function joinWith(c: TestClient, roomId: string, bearer: string) {
  return await c.request('join', { roomId, bearer, platform: 'Web' });
}

const failed = (e: number) => ({ s: false, e });
const anyToken = (): string => randomBytes(32).toString('base64url');

describe('resume belongs to the owner', () => {
  it('a socketId alone, a guessed token or another member’s token resume nothing; the owner stays', async () => {
    const a = await join('gw1', 'sec-hijack', 'alice');
    const b = await join('gw1', 'sec-hijack', 'bob');
    // Bob knows Alice's socketId: every member does.
    const joinB = b.frames.find((f) => f.a === 'joinR')?.d as JoinReply;
    expect(joinB.sessions).toEqual([{ socketId: a.socketId, userId: 'alice' }]);

    const intruder = await connect(sp.gw2.url);
    expect(await intruder.request('reconnect', { socketId: a.socketId })).toMatchObject(
      failed(E.AUTH_FAILED),
    );
    expect(
      await intruder.request('reconnect', { socketId: a.socketId, resumeToken: anyToken() }),
    ).toMatchObject(failed(E.AUTH_FAILED));
    expect(
      await intruder.request('reconnect', { socketId: a.socketId, resumeToken: b.resumeToken }),
    ).toMatchObject(failed(E.AUTH_FAILED));
    // Not even with a valid token of the same user and room.
    const bearer = await mintToken({ sub: 'alice', rooms: ['sec-hijack'] });
    expect(
      await intruder.request('reconnect', {
        socketId: a.socketId,
        resumeToken: anyToken(),
        bearer,
      }),
    ).toMatchObject(failed(E.AUTH_FAILED));

    // Alice was not touched: her socket is open and her relays reach her, not the intruder.
    expect((await b.request('exchangeSdp', { to: a.socketId, sdp: sdp('offer', 'h') })).s).toBe(
      true,
    );
    expect((await a.event('eventExchangeSdp')).d).toMatchObject({ from: { socketId: b.socketId } });
    await sleep(200);
    expect(intruder.frames.every((f) => f.a === 'reconnectR')).toBe(true);
    expect(a.ws.readyState).toBe(a.ws.OPEN);
    const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'sec-hijack' });
    expect(info.sessions.map((s) => s.state)).toEqual(['active', 'active']);
    // The refused connection is still usable for a join of its own.
    expect((await joinWith(intruder, 'sec-hijack', bearer)).s).toBe(true);
  });

  it('a resume token works once: each reconnect spends it and hands out the next', async () => {
    const a = await join('gw1', 'sec-once', 'ann');
    const first = a.resumeToken;
    const a2 = await connect(sp.gw2.url);
    const r = await a2.resume(a);
    expect(r).toMatchObject({ s: true, d: { roomSize: 1 } });
    expect(a2.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a2.resumeToken).not.toBe(first);
    expect(await a.closed).toEqual({ code: 4001, reason: 'session reconnected elsewhere' });

    // The spent token again: refused, and the session's current socket stays.
    const a3 = await connect(sp.gw1.url);
    expect(await a3.resume({ socketId: a.socketId, resumeToken: first })).toMatchObject(
      failed(E.AUTH_FAILED),
    );
    await sleep(200);
    expect(a2.ws.readyState).toBe(a2.ws.OPEN);
    // The fresh one works (and the one before it is now spent too).
    expect(await a3.resume(a2)).toMatchObject({ s: true });
    expect((await a2.closed).code).toBe(4001);

    // Two connections racing with one token: exactly one wins.
    const [x, y] = [await connect(sp.gw1.url), await connect(sp.gw2.url)];
    const results = await Promise.all([x.resume(a3), y.resume(a3)]);
    expect(results.map((f) => f.s).sort()).toEqual([false, true]);
    expect(results.find((f) => f.s === false)).toMatchObject(failed(E.AUTH_FAILED));

    // A client may propose the next token (it then knows it even if the reply is lost)…
    const winner = results[0].s === true ? x : y;
    const z = await connect(sp.gw1.url);
    const proposal = anyToken();
    expect(await z.resume(winner, { nextResumeToken: proposal })).toMatchObject({
      s: true,
      d: { resumeToken: proposal },
    });
    // …but not the current one (the token would work twice).
    const w = await connect(sp.gw2.url);
    expect(await w.resume(z, { nextResumeToken: z.resumeToken })).toMatchObject(
      failed(ErrorCodes.JSON_FIELD_INVALID.code),
    );
    expect((await w.resume(z)).s).toBe(true);
  });

  it('the rooms service keeps only the hash; operators and peers never see a resume token', async () => {
    const a = await join('gw2', 'sec-hash', 'amy');
    const b = await join('gw1', 'sec-hash', 'ben');
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    try {
      const rows = await db.query<Record<string, unknown>>(
        'SELECT * FROM sessions WHERE room_id = $1',
        ['sec-hash'],
      );
      const stored = JSON.stringify(rows.rows);
      for (const c of [a, b]) {
        expect(stored).not.toContain(c.resumeToken);
        const hash = createHash('sha256')
          .update(c.resumeToken ?? '')
          .digest('hex');
        expect(rows.rows.find((r) => r['socket_id'] === c.socketId)?.['resume_hash']).toBe(hash);
      }
    } finally {
      await db.end();
    }
    const info = JSON.stringify(await sp.bus.request(Rooms.roomInfo, { roomId: 'sec-hash' }));
    const seenByB = JSON.stringify(b.frames);
    for (const t of [a.resumeToken ?? '', b.resumeToken ?? '']) expect(info).not.toContain(t);
    expect(seenByB).not.toContain(a.resumeToken);
  });

  it('GATEWAY_LEGACY_RESUME (unsafe, off by default) resumes by socketId alone', async () => {
    const a = await join('gw1', 'sec-legacy', 'old-client');
    const onDefault = await connect(sp.gw2.url);
    expect(await onDefault.request('reconnect', { socketId: a.socketId })).toMatchObject(
      failed(E.AUTH_FAILED),
    );
    const onLegacy = await connect(legacy.url);
    expect(await onLegacy.request('reconnect', { socketId: a.socketId })).toMatchObject({
      s: true,
      d: { roomSize: 1 },
    });
    expect((await a.closed).code).toBe(4001);
  });
});

describe('tokens expire on live sessions', () => {
  it('an expired token cuts the session with 4003 and it leaves at once; a refreshed one is kept', async () => {
    const peer = await join('gw2', 'sec-exp', 'peer');
    // Two members whose tokens expire in 2 s: one lets it run out, one refreshes it.
    const joinFor2s = async (user: string): Promise<{ c: TestClient; socketId: string }> => {
      const c = await connect(sp.gw1.url);
      const r = await joinWith(
        c,
        'sec-exp',
        await mintToken({ sub: user, rooms: ['sec-exp'], expiresInS: 2 }),
      );
      expect(r.s, user).toBe(true);
      return { c, socketId: (r.d as JoinReply).socketId };
    };
    const { c: short, socketId: shortId } = await joinFor2s('short');
    const { c: kept, socketId: keptId } = await joinFor2s('kept');
    // A token of another user, or of another room, is refused; the session is untouched.
    expect(
      await kept.request('refreshToken', {
        bearer: await mintToken({ sub: 'peer', rooms: ['sec-exp'] }),
      }),
    ).toMatchObject(failed(E.AUTH_FAILED));
    expect(
      await kept.request('refreshToken', {
        bearer: await mintToken({ sub: 'kept', rooms: ['elsewhere'] }),
      }),
    ).toMatchObject(failed(E.AUTH_FAILED));
    expect(
      await kept.request('refreshToken', {
        bearer: await mintToken({ sub: 'kept', rooms: ['sec-exp'], expiresInS: MAX_TTL_S + 60 }),
      }),
    ).toMatchObject(failed(E.AUTH_FAILED));
    const fresh = await kept.request('refreshToken', {
      bearer: await mintToken({ sub: 'kept', rooms: ['sec-exp'], expiresInS: 60 }),
    });
    expect(fresh).toMatchObject({ s: true });
    const expiresAt = (fresh.d as { expiresAt: number }).expiresAt;
    expect(expiresAt).toBeGreaterThan(Date.now() + 50_000);

    const cut = await short.closed;
    expect(cut).toEqual({ code: 4003, reason: 'token expired' });
    // It left like a close: the room is told at once, not after the reconnect window.
    const leave = await peer.waitFor(
      (f) => f.a === 'eventLeave' && (f.d as { socketId: string }).socketId === shortId,
      TIMINGS.RECONNECT_WINDOW_MS - 500,
      'eventLeave of the expired session',
    );
    expect(leave.d).toMatchObject({ userId: 'short' });

    // The refreshed session lives on past its first token's expiry, and works.
    await sleep(500);
    expect(kept.ws.readyState).toBe(kept.ws.OPEN);
    expect((await peer.request('exchangeSdp', { to: keptId, sdp: sdp('offer', 'still') })).s).toBe(
      true,
    );
    await kept.event('eventExchangeSdp');
    expect(peer.events('eventLeave').map((f) => (f.d as { socketId: string }).socketId)).toEqual([
      shortId,
    ]);
  });

  it('a reconnect after the token expired is refused, unless it brings a fresh token', async () => {
    const c = await connect(sp.gw1.url);
    const r = await joinWith(
      c,
      'sec-exp-rc',
      await mintToken({ sub: 'late', rooms: ['sec-exp-rc'], expiresInS: 1 }),
    );
    const owner = {
      socketId: (r.d as JoinReply).socketId,
      resumeToken: (r.d as JoinReply).resumeToken,
    };
    c.kill();
    await sleep(1500); // expired, still inside the reconnect window
    const c2 = await connect(sp.gw2.url);
    expect(await c2.resume(owner)).toMatchObject(failed(E.AUTH_FAILED));
    // A failed try spends nothing: the owner comes back with a fresh token of the same user.
    const bearer = await mintToken({ sub: 'late', rooms: ['sec-exp-rc'], expiresInS: 60 });
    expect(await c2.resume(owner, { bearer })).toMatchObject({ s: true });
    await sleep(500);
    expect(c2.ws.readyState).toBe(c2.ws.OPEN);
  });

  it(`refuses tokens that live longer than AUTH_MAX_TOKEN_TTL_S (${String(MAX_TTL_S)} s)`, async () => {
    const c = await connect(sp.gw1.url);
    const long = await mintToken({ sub: 'u', rooms: ['sec-ttl'], expiresInS: MAX_TTL_S + 1 });
    expect(await joinWith(c, 'sec-ttl', long)).toMatchObject(failed(E.AUTH_FAILED));
    const ok = await mintToken({ sub: 'u', rooms: ['sec-ttl'], expiresInS: MAX_TTL_S });
    expect((await joinWith(c, 'sec-ttl', ok)).s).toBe(true);
  });
});

describe('grants', () => {
  const transportId = '00000000-0000-4000-8000-000000000000';
  const vp8 = {
    mid: '0',
    codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }],
    encodings: [{ ssrc: 1 }],
  };
  const opus = {
    mid: '1',
    codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
    encodings: [{ ssrc: 2 }],
  };
  /** The refusal, or the error the action met further on (here: no media node runs). */
  const code = async (c: TestClient, a: string, d: unknown): Promise<number | undefined> => {
    const r = await c.request(a, d, 15_000);
    return r.s === true ? undefined : r.e;
  };

  it('publish, sources, subscribe, data and the plain-RTP roles are enforced', async () => {
    const viewer = await join('gw1', 'sec-grants', 'viewer', {
      grants: { canPublish: false, canPublishData: false },
    });
    expect(await code(viewer, 'createWebRtcTransport', { direction: 'send' })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(await code(viewer, 'produce', { transportId, kind: 'video', rtpParameters: vp8 })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(await code(viewer, 'resumeProducer', { producerId: transportId })).toBe(
      E.PERMISSION_DENIED,
    );

    const deaf = await join('gw1', 'sec-grants', 'deaf', { grants: { canSubscribe: false } });
    expect(await code(deaf, 'createWebRtcTransport', { direction: 'recv' })).toBe(
      E.PERMISSION_DENIED,
    );

    const mic = await join('gw2', 'sec-grants', 'mic', {
      grants: { canPublishSources: ['microphone'], canPublishData: false },
    });
    expect(await code(mic, 'produce', { transportId, kind: 'video', rtpParameters: vp8 })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(
      await code(mic, 'produce', {
        transportId,
        kind: 'video',
        rtpParameters: vp8,
        source: 'screen',
      }),
    ).toBe(E.PERMISSION_DENIED);
    expect(
      await code(mic, 'produceData', { transportId, sctpStreamParameters: { streamId: 1 } }),
    ).toBe(E.PERMISSION_DENIED);
    // What the grants allow passes the gateway (and fails further on: no media node here).
    expect(
      await code(mic, 'produce', { transportId, kind: 'audio', rtpParameters: opus }),
    ).not.toBe(E.PERMISSION_DENIED);

    const member = await join('gw2', 'sec-grants', 'member');
    for (const direction of ['send', 'recv']) {
      expect(await code(member, 'createPlainTransport', { direction })).toBe(E.PERMISSION_DENIED);
    }
    expect(
      await code(member, 'connectPlainTransport', { transportId, ip: '127.0.0.1', port: 9 }),
    ).toBe(E.PERMISSION_DENIED);
    const recorder = await join('gw2', 'sec-grants', 'rec', { grants: { role: 'recorder' } });
    expect(await code(recorder, 'createPlainTransport', { direction: 'send' })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(await code(recorder, 'createPlainTransport', { direction: 'recv' })).not.toBe(
      E.PERMISSION_DENIED,
    );
    const caster = await join('gw1', 'sec-grants', 'cast', { grants: { role: 'broadcaster' } });
    expect(await code(caster, 'createPlainTransport', { direction: 'recv' })).toBe(
      E.PERMISSION_DENIED,
    );
  });

  it('a refresh replaces the grants', async () => {
    const c = await join('gw1', 'sec-regrant', 'switch', { grants: { canPublish: false } });
    expect(await code(c, 'produce', { transportId, kind: 'audio', rtpParameters: opus })).toBe(
      E.PERMISSION_DENIED,
    );
    const r = await c.request('refreshToken', {
      bearer: await mintToken({ sub: 'switch', rooms: ['sec-regrant'] }),
    });
    expect(r.s).toBe(true);
    expect(await code(c, 'produce', { transportId, kind: 'audio', rtpParameters: opus })).not.toBe(
      E.PERMISSION_DENIED,
    );
  });

  it('a hidden member is nobody’s peer: not listed, no eventLeave, no signaling, no publishing', async () => {
    const seen = await join('gw1', 'sec-hidden', 'seen');
    const ghost = await join('gw2', 'sec-hidden', 'ghost', { grants: { hidden: true } });
    const later = await join('gw1', 'sec-hidden', 'later');
    const joinLater = later.frames.find((f) => f.a === 'joinR')?.d as JoinReply;
    expect(joinLater.sessions).toEqual([{ socketId: seen.socketId, userId: 'seen' }]);
    expect(joinLater.roomSize).toBe(3);
    expect(await code(ghost, 'exchangeSdp', { to: seen.socketId, sdp: sdp('offer', 'boo') })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(await code(ghost, 'produce', { transportId, kind: 'audio', rtpParameters: opus })).toBe(
      E.PERMISSION_DENIED,
    );
    expect(
      await code(ghost, 'produceData', { transportId, sctpStreamParameters: { streamId: 1 } }),
    ).toBe(E.PERMISSION_DENIED);
    // It may watch.
    expect(await code(ghost, 'createWebRtcTransport', { direction: 'recv' })).not.toBe(
      E.PERMISSION_DENIED,
    );
    ghost.close(1000);
    await ghost.closed;
    const other = await join('gw2', 'sec-hidden', 'other');
    other.close(1000);
    // The leave of `other` (after the ghost's) arrives; the ghost's never does.
    await seen.waitFor(
      (f) => f.a === 'eventLeave' && (f.d as { userId: string }).userId === 'other',
      5000,
    );
    expect(seen.events('eventLeave').map((f) => (f.d as { userId: string }).userId)).toEqual([
      'other',
    ]);
  });

  it(`a user holds at most ROOM_MAX_SESSIONS_PER_USER (4) sessions in a room`, async () => {
    const mine = [];
    for (let i = 0; i < 4; i++) mine.push(await join(i % 2 ? 'gw1' : 'gw2', 'sec-seats', 'hog'));
    const fifth = await connect(sp.gw1.url);
    const bearer = await mintToken({ sub: 'hog', rooms: ['sec-seats'] });
    expect(await joinWith(fifth, 'sec-seats', bearer)).toMatchObject(failed(E.TOO_MANY_SESSIONS));
    // Another user still gets in; the same user does once a seat is free.
    expect((await join('gw2', 'sec-seats', 'fair')).socketId).toBeDefined();
    mine[0]?.close(1000);
    await mine[0]?.closed;
    await waitFor('the seat to be free', async () => {
      const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'sec-seats' });
      return info.sessions.filter((x) => x.userId === 'hog').length === 3;
    });
    expect((await joinWith(fifth, 'sec-seats', bearer)).s).toBe(true);
  });
});

describe('abuse limits', () => {
  /** Count the UPDATE statements that write `column` of sessions (a statement trigger). */
  async function countWrites(
    column: string,
  ): Promise<{ n(): Promise<number>; end(): Promise<void> }> {
    const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
    await db.connect();
    const table = `writes_${column}`;
    await db.query(`CREATE TABLE IF NOT EXISTS ${table} (n int NOT NULL)`);
    await db.query(`DELETE FROM ${table}`);
    await db.query(`INSERT INTO ${table} VALUES (0)`);
    await db.query(`CREATE OR REPLACE FUNCTION count_${column}() RETURNS trigger AS $$
      BEGIN UPDATE ${table} SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql`);
    await db.query(`DROP TRIGGER IF EXISTS count_${column} ON sessions`);
    await db.query(`CREATE TRIGGER count_${column} AFTER UPDATE OF ${column} ON sessions
      FOR EACH STATEMENT EXECUTE FUNCTION count_${column}()`);
    return {
      n: async () => (await db.query<{ n: number }>(`SELECT n FROM ${table}`)).rows[0]?.n ?? -1,
      end: async () => {
        await db.query(`DROP TRIGGER IF EXISTS count_${column} ON sessions`);
        await db.end();
      },
    };
  }

  it('a burst of orientationChange is coalesced: few writes, the room hears the latest', async () => {
    const writes = await countWrites('orientation');
    try {
      const a = await join('gw1', 'sec-orient', 'spinner');
      const b = await join('gw2', 'sec-orient', 'watcher');
      const values = [0, 90, 180, 270] as const;
      // One after the other (within the rate limit, and WS_MAX_INFLIGHT), as fast as replies come.
      for (let i = 0; i < 40; i++) {
        const r = await a.request('orientationChange', {
          orientation: values[i % 4],
          camera: 'front',
        });
        expect(r.s, `change ${String(i)}`).toBe(true);
      }
      const last = values[39 % 4];
      await b.waitFor(
        (f) =>
          f.a === 'eventOrientationChange' && (f.d as { orientation: number }).orientation === last,
        5000,
        'the latest orientation',
      );
      await sleep(1500);
      // One write now, one for the latest after the interval: not forty.
      expect(await writes.n()).toBeLessThanOrEqual(3);
      expect(b.events('eventOrientationChange').length).toBeLessThanOrEqual(3);
      const info = await sp.bus.request(Rooms.roomInfo, { roomId: 'sec-orient' });
      expect(info.sessions).toHaveLength(2);
    } finally {
      await writes.end();
    }
  });

  it('eventCpu floods become one batched write per flush', async () => {
    const writes = await countWrites('cpu_used');
    try {
      const clients = [await join('gw1', 'sec-cpu', 'c1'), await join('gw2', 'sec-cpu', 'c2')];
      for (let i = 1; i <= 30; i++) {
        for (const c of clients) c.sendRaw(JSON.stringify({ a: 'eventCpu', d: { cpuUsed: i } }));
      }
      const db = new pg.Client({ connectionString: sp.platform.databaseUrl });
      await db.connect();
      try {
        await waitFor('the latest figures', async () => {
          const r = await db.query<{ cpu_used: number | null }>(
            'SELECT cpu_used FROM sessions WHERE room_id = $1',
            ['sec-cpu'],
          );
          return r.rows.length === 2 && r.rows.every((x) => x.cpu_used === 30);
        });
      } finally {
        await db.end();
      }
      expect(await writes.n()).toBeLessThanOrEqual(2);
    } finally {
      await writes.end();
    }
  });
});
