/**
 * A big room's broadcasts in batches: on gateways where a room has WS_BATCH_MIN_MEMBERS (3
 * here) members or more, its broadcasts are gathered for WS_BATCH_MS and written as one
 * eventBatch frame to clients that asked for it (`batchEvents`), as single frames to the
 * others — on the real NATS, PostgreSQL, rooms service and two gateways. Nothing from or
 * about a peer overtakes that peer's queued broadcasts; smaller rooms get plain frames.
 */
import { describe, expect, it } from 'vitest';
import { TestClient, joinVia, type Frame } from './client.ts';
import { sdp, sleep } from './fixtures.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

/** Long enough that a relay would overtake a queued join, were the batch not written first. */
const BATCH_MS = 500;

let sp: SignalingPlatform;
const open: TestClient[] = [];

useSignaling(
  open,
  (p) => {
    sp = p;
  },
  {
    WS_BATCH_MIN_MEMBERS: '3',
    WS_BATCH_MS: String(BATCH_MS),
  },
);

const join = joinVia(() => sp, open);
const batched = { batchEvents: true };

/** The socketId and roomSize of each of `c`'s events `a`, in the order received. */
function seen(c: TestClient, a: 'eventJoin' | 'eventLeave'): { socketId: string; size: number }[] {
  return c.events(a).map((f) => {
    const d = f.d as { socketId: string; roomSize: number };
    return { socketId: d.socketId, size: d.roomSize };
  });
}

/** Every event of `c`'s batches. */
function inBatches(c: TestClient): Frame[] {
  return c.batches.flat();
}

describe('a room with enough members on a gateway', () => {
  it("gets its joins and leaves batched for clients that asked, as single frames for the others, in the room's order", async () => {
    const room = 'batch-fill';
    const a = await join('gw1', room, 'a', {}, batched);
    const b = await join('gw1', room, 'b');
    const c = await join('gw1', room, 'c', {}, batched);
    await a.waitFor(() => a.events('eventJoin').length === 2, 5000, "b's and c's joins");
    // Five at once, through both gateways: the rooms service numbers them, and the roomSize
    // each join reports is its place in that order.
    const joiners = await Promise.all(
      [1, 2, 3, 4, 5].map(
        async (i) => await join(i % 2 === 0 ? 'gw2' : 'gw1', room, `d${String(i)}`, {}, batched),
      ),
    );
    for (const m of [a, b, c]) {
      await m.waitFor(() => m.events('eventJoin').length >= 7 - [a, b, c].indexOf(m), 5000);
    }
    const last5 = (m: TestClient) => seen(m, 'eventJoin').slice(-5);
    const expected = last5(a);
    // In the room's order, and the same for everyone.
    expect(expected.map((j) => j.size)).toEqual([4, 5, 6, 7, 8]);
    expect(new Set(expected.map((j) => j.socketId))).toEqual(
      new Set(joiners.map((d) => d.socketId)),
    );
    expect(last5(b)).toEqual(expected);
    expect(last5(c)).toEqual(expected);
    // a and c got them in batches, fewer batches than joins; b one frame each.
    for (const m of [a, c]) {
      const joins = inBatches(m).filter((f) => f.a === 'eventJoin');
      expect(joins.slice(-5).map((f) => (f.d as { roomSize: number }).roomSize)).toEqual([
        4, 5, 6, 7, 8,
      ]);
      expect(m.batches.length).toBeLessThan(6);
    }
    expect(b.batches).toEqual([]);
    // Nobody sees its own join; each joiner sees the later joiners' (and maybe earlier ones',
    // committed while its own join was on the way), in order.
    await sleep(BATCH_MS + 200);
    for (const d of joiners) {
      const mine = expected.findIndex((j) => j.socketId === d.socketId);
      const got = seen(d, 'eventJoin');
      expect(got.map((j) => j.socketId)).not.toContain(d.socketId);
      expect(got.slice(got.length - (4 - mine))).toEqual(expected.slice(mine + 1));
      expect(got.map((j) => j.size)).toEqual(got.map((j) => j.size).sort((x, y) => x - y));
    }

    // Leaves are batched too.
    for (const d of joiners.slice(0, 3)) d.close(1000);
    for (const m of [a, b, c]) {
      await m.waitFor(() => m.events('eventLeave').length === 3, 5000, '3 leaves');
    }
    const leaves = seen(a, 'eventLeave');
    expect(leaves.map((l) => l.size)).toEqual([7, 6, 5]);
    expect(new Set(leaves.map((l) => l.socketId))).toEqual(
      new Set(joiners.slice(0, 3).map((d) => d.socketId)),
    );
    expect(seen(b, 'eventLeave')).toEqual(leaves);
    expect(seen(c, 'eventLeave')).toEqual(leaves);
    expect(inBatches(a).filter((f) => f.a === 'eventLeave')).toHaveLength(3);
    expect(b.batches).toEqual([]);

    const metrics = await (await fetch(`${sp.gw1.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/sb_gateway_event_batches_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/sb_gateway_batched_events_total\{[^}]*\} [1-9]/);
  });

  it("a peer that joins and relays at once: the member has the peer's eventJoin before the relay", async () => {
    const room = 'batch-order';
    const m = await join('gw1', room, 'm', {}, batched);
    await join('gw1', room, 'x', {}, batched);
    await join('gw1', room, 'y');
    await m.waitFor(() => m.events('eventJoin').length === 2, 5000);
    await sleep(BATCH_MS + 100);
    // A peer on the member's gateway (a local relay), then one on the other (over NATS).
    for (const gw of ['gw1', 'gw2'] as const) {
      const p = await join(gw, room, `p-${gw}`);
      const fromP = (f: Frame): boolean =>
        f.a === 'eventExchangeSdp' &&
        (f.d as { from: { socketId: string } }).from.socketId === p.socketId;
      const joinOfP = (f: Frame): boolean =>
        f.a === 'eventJoin' && (f.d as { socketId: string }).socketId === p.socketId;
      expect((await p.request('exchangeSdp', { to: m.socketId, sdp: sdp('offer', gw) })).s).toBe(
        true,
      );
      // Without the order rule, the relay would come at once and the join BATCH_MS later.
      await m.waitFor(fromP, 5000, "p's relay");
      const joined = m.frames.findIndex(joinOfP);
      expect(joined).toBeGreaterThanOrEqual(0);
      expect(joined).toBeLessThan(m.frames.findIndex(fromP));
      expect(inBatches(m).some(joinOfP)).toBe(true);
    }
  });

  it('a session resumed on the other gateway reads eventBatch as its reconnect says', async () => {
    const room = 'batch-resume';
    for (const u of ['r1', 'r2']) await join('gw2', room, u);
    const k = await join('gw1', room, 'k', {}, batched);
    k.kill();
    const back = await TestClient.connect(sp.gw2.url);
    open.push(back);
    expect((await back.resume(k, batched)).s).toBe(true);
    await back.event('eventRoomState');
    const late = await join('gw1', room, 'late');
    const j = await back.waitFor(
      (f) => f.a === 'eventJoin' && (f.d as { socketId: string }).socketId === late.socketId,
    );
    expect(inBatches(back)).toContainEqual(j);
    // Without it, on the same gateway: single frames.
    const plain = await TestClient.connect(sp.gw2.url);
    open.push(plain);
    back.kill();
    expect((await plain.resume(back)).s).toBe(true);
    const later = await join('gw1', room, 'later');
    await plain.waitFor(
      (f) => f.a === 'eventJoin' && (f.d as { socketId: string }).socketId === later.socketId,
    );
    expect(plain.batches).toEqual([]);
  });
});

describe('batchEvents', () => {
  it('that is not a boolean is refused (0x504) and changes nothing', async () => {
    const room = 'batch-bad';
    const a = await join('gw1', room, 'a', {}, batched);
    const bad = await TestClient.connect(sp.gw1.url);
    open.push(bad);
    const r = await bad.request('join', {
      ...(await TestClient.joinData(room, 'bad')),
      batchEvents: 'yes',
    });
    expect(r).toMatchObject({ a: 'joinR', s: false, e: 0x504 });
    const resumed = await bad.request('reconnect', {
      socketId: a.socketId,
      resumeToken: a.resumeToken,
      batchEvents: 'yes',
    });
    expect(resumed).toMatchObject({ a: 'reconnectR', s: false, e: 0x504 });
    // The same socket may still join properly; a noticed nothing but that join.
    expect((await bad.request('join', await TestClient.joinData(room, 'bad'))).s).toBe(true);
    await a.event('eventJoin');
    await sleep(300);
    expect(a.frames.filter((f) => f.s === undefined).map((f) => f.a)).toEqual([
      'eventJoin',
      'eventUserMediaConfiguration',
    ]);
    expect(a.ws.readyState).toBe(a.ws.OPEN);
  });
});

describe('a room below WS_BATCH_MIN_MEMBERS on a gateway', () => {
  it('gets plain frames, even where the client asked for batches', async () => {
    const room = 'batch-small';
    // Two here, and more on the other gateway: each gateway counts its own.
    const a = await join('gw1', room, 'a', {}, batched);
    const b = await join('gw1', room, 'b', {}, batched);
    for (const u of ['c', 'd', 'e']) await join('gw2', room, u, {}, batched);
    await a.waitFor(() => a.events('eventJoin').length === 4, 5000);
    await b.waitFor(() => b.events('eventJoin').length === 3, 5000);
    expect(a.batches).toEqual([]);
    expect(b.batches).toEqual([]);
    expect(seen(a, 'eventJoin').map((j) => j.size)).toEqual([2, 3, 4, 5]);
  });
});
