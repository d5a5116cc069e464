/**
 * Relays between gateways in batches (`sig.gw.<gatewayId>.relay`): a gateway learns where a
 * socket is from its first relay's reply, then sends what it relays there in one event-loop
 * turn as one request. What must hold whatever the path: order per sender and target, a
 * reply only once the event was written (or an error code), no relay across rooms, and a
 * socket that moved or left answered item by item.
 */
import type { Msg } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  Rooms,
  relayBatch,
  signalingSubjects,
  type RelayBatch,
} from '@switchboard/protocol';
import { candidate, sdp, sleep } from './fixtures.ts';
import { TestClient } from './client.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];

useSignaling(open, async (p) => {
  sp = p;
});

/** Subscriptions of watchBatches, ended after each test (whatever its outcome). */
const watching: (() => void)[] = [];

afterEach(() => {
  for (const stop of watching.splice(0)) stop();
});

async function join(url: string, roomId: string, userId: string): Promise<TestClient> {
  const c = await TestClient.join(url, roomId, userId);
  open.push(c);
  return c;
}

function prefix(): string {
  return sp.bus.prefix;
}

/** The gateway a socket is attached to, as the rooms service has it. */
async function gatewayOf(roomId: string, socketId: string | undefined): Promise<string> {
  const info = await sp.bus.request(Rooms.roomInfo, { roomId });
  const g = info.sessions.find((s) => s.socketId === socketId)?.gatewayId;
  if (g === undefined) throw new Error(`${String(socketId)} is not in ${roomId}`);
  return g;
}

/**
 * Every relay batch on the bus until `stop()` (the tests' identity may watch any subject).
 * While it watches, a batch to a gateway that is gone is not "no responders".
 */
async function watchBatches(): Promise<{
  seen: { subject: string; batch: RelayBatch }[];
  stop: () => void;
}> {
  const seen: { subject: string; batch: RelayBatch }[] = [];
  const sub = sp.bus.subscribe(`${prefix()}.sig.gw.*.relay`, relayBatch, (batch, msg) => {
    seen.push({ subject: msg.subject, batch });
  });
  await sp.bus.connection?.flush();
  const stop = (): void => {
    sub.unsubscribe();
  };
  watching.push(stop);
  return { seen, stop };
}

/** A batch request of the tests' own, answered by the gateway `gatewayId`. */
async function sendBatch(gatewayId: string, batch: unknown): Promise<unknown> {
  const nc = sp.bus.connection;
  if (nc === undefined) throw new Error('the test bus is not connected');
  const reply: Msg = await nc.request(
    signalingSubjects.gatewayRelay(prefix(), gatewayId),
    typeof batch === 'string' ? batch : JSON.stringify(batch),
    { timeout: 3000 },
  );
  return reply.json();
}

const SOCKET_ID_DOES_NOT_EXIST = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;

describe('relays to another gateway', () => {
  it('go in batches, in order, each confirmed once written', async () => {
    const { seen, stop } = await watchBatches();
    const a = await join(sp.gw1.url, 'room-batch', 'ada');
    const b = await join(sp.gw2.url, 'room-batch', 'bo');
    const to = (c: TestClient): string => c.socketId ?? '';
    // The first relay finds where the peer is (on its socket's subject)…
    expect((await a.request('exchangeSdp', { to: to(b), sdp: sdp('offer', 'first') })).s).toBe(
      true,
    );
    expect((await b.request('exchangeSdp', { to: to(a), sdp: sdp('answer', 'first') })).s).toBe(
      true,
    );
    // …then both send 30 candidates at once (WS_MAX_INFLIGHT is 32), without waiting.
    const n = 30;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => [
        a.request('exchangeCandidate', { to: to(b), candidate: candidate(i) }),
        b.request('exchangeCandidate', { to: to(a), candidate: candidate(1000 + i) }),
      ]).flat(),
    );
    expect(replies.every((r) => r.s === true)).toBe(true);
    for (const [from, target, base] of [
      [a, b, 0],
      [b, a, 1000],
    ] as const) {
      // Each event was written before its reply (which the client may still read first, on
      // another socket): all arrive, once, in order.
      await target.waitFor(
        () => target.events('eventExchangeCandidate').length >= n,
        5000,
        `${String(n)} candidates`,
      );
      await sleep(100);
      expect(target.events('eventExchangeCandidate').map((f) => f.d)).toEqual(
        Array.from({ length: n }, (_, i) => ({
          from: { socketId: from.socketId, userId: from.userId },
          candidate: candidate(base + i),
        })),
      );
    }
    stop();
    // Fewer messages than relays went over NATS, each to the gateway holding its targets.
    const [gw1, gw2] = [
      await gatewayOf('room-batch', a.socketId),
      await gatewayOf('room-batch', b.socketId),
    ];
    const items = seen.flatMap((s) => s.batch.items);
    expect(items).toHaveLength(2 * n);
    expect(seen.length).toBeLessThan(2 * n);
    for (const { subject, batch } of seen) {
      for (const item of batch.items) {
        expect(subject).toBe(
          signalingSubjects.gatewayRelay(prefix(), item.to === b.socketId ? gw2 : gw1),
        );
        expect(item.roomId).toBe('room-batch');
      }
    }
    a.close();
    b.close();
  });

  it('are refused across rooms, even to a socket whose gateway is known', async () => {
    const b = await join(sp.gw2.url, 'room-bx-1', 'bea');
    const c = await join(sp.gw1.url, 'room-bx-1', 'cy');
    const x = await join(sp.gw1.url, 'room-bx-2', 'xi');
    // gw1 learns where b is from c's relays in b's room…
    for (let i = 0; i < 2; i++) {
      expect(
        (await c.request('exchangeCandidate', { to: b.socketId, candidate: candidate(i) })).s,
      ).toBe(true);
    }
    // …which a member of another room on gw1 cannot use.
    const r = await x.request('exchangeCandidate', { to: b.socketId, candidate: candidate(7) });
    expect(r).toMatchObject({ s: false, e: SOCKET_ID_DOES_NOT_EXIST });

    // A batch naming another room is refused item by item by the gateway holding the socket.
    const gw2 = await gatewayOf('room-bx-1', b.socketId);
    const forged = {
      a: 'eventExchangeCandidate',
      d: { from: { socketId: x.socketId, userId: 'xi' }, candidate: candidate(8) },
    };
    expect(
      await sendBatch(gw2, {
        items: [
          { to: b.socketId, roomId: 'room-bx-2', event: forged },
          { to: b.socketId, roomId: 'room-bx-1', event: forged },
        ],
      }),
    ).toEqual({ ok: true, data: { delivered: [false, true] } });
    await b.waitFor(() => b.events('eventExchangeCandidate').length === 3, 5000, '3 candidates');
    await sleep(200);
    expect(
      b.events('eventExchangeCandidate').map((f) => (f.d as { candidate: unknown }).candidate),
    ).toEqual([candidate(0), candidate(1), candidate(8)]);
    b.close();
    c.close();
    x.close();
  });

  it('to a socket that moved or left: answered item by item; the sender asks again or reports', async () => {
    const gw3 = await sp.spawn('gateway', 'gateway-3');
    const a = await join(sp.gw1.url, 'room-moves', 'al');
    const b = await join(sp.gw2.url, 'room-moves', 'bi');
    const gone = await join(sp.gw2.url, 'room-moves', 'gone');
    const gw2 = await gatewayOf('room-moves', b.socketId);
    const goneId = gone.socketId;
    gone.close();
    await a.event('eventLeave');

    // A batch with items for a socket there, one that left and one that never was.
    const event = {
      a: 'eventExchangeCandidate',
      d: { from: { socketId: a.socketId, userId: 'al' }, candidate: candidate(1) },
    };
    expect(
      await sendBatch(gw2, {
        items: [
          { to: goneId, roomId: 'room-moves', event },
          { to: b.socketId, roomId: 'room-moves', event },
          { to: 'f'.repeat(32), roomId: 'room-moves', event },
        ],
      }),
    ).toEqual({ ok: true, data: { delivered: [false, true, false] } });
    await b.event('eventExchangeCandidate');

    // gw1 learns that b is on gw2…
    for (let i = 2; i < 4; i++) {
      expect(
        (await a.request('exchangeCandidate', { to: b.socketId, candidate: candidate(i) })).s,
      ).toBe(true);
    }
    // …b moves to gateway 3: gw2 answers "not here", gw1 asks b's subject, gateway 3 delivers.
    b.kill();
    await sleep(300);
    const b2 = await TestClient.connect(gw3.url);
    open.push(b2);
    expect(await b2.resume(b)).toMatchObject({ a: 'reconnectR', s: true });
    const { seen, stop } = await watchBatches();
    for (let i = 4; i < 8; i++) {
      expect(
        (await a.request('exchangeCandidate', { to: b.socketId, candidate: candidate(i) })).s,
      ).toBe(true);
    }
    await b2.waitFor(() => b2.events('eventExchangeCandidate').length === 4, 5000, '4 candidates');
    expect(
      b2.events('eventExchangeCandidate').map((f) => (f.d as { candidate: unknown }).candidate),
    ).toEqual([4, 5, 6, 7].map(candidate));
    stop();
    const gw3Id = await gatewayOf('room-moves', b.socketId);
    // The first went to gw2 in a batch (refused there); the later ones to gateway 3.
    expect(seen[0]?.subject).toBe(signalingSubjects.gatewayRelay(prefix(), gw2));
    expect(seen.slice(1).map((s) => s.subject)).toContain(
      signalingSubjects.gatewayRelay(prefix(), gw3Id),
    );

    // b leaves: gateway 3 answers "not here", nobody holds b: SOCKET_ID_DOES_NOT_EXIST.
    b2.close();
    await a.event('eventLeave', 10_000, a.frames.findIndex((f) => f.a === 'eventLeave') + 1);
    expect(
      await a.request('exchangeCandidate', { to: b.socketId, candidate: candidate(9) }),
    ).toMatchObject({
      s: false,
      e: SOCKET_ID_DOES_NOT_EXIST,
    });

    // A gateway that is gone (nobody answers its batches): the same answer, at once.
    const c = await TestClient.join(gw3.url, 'room-moves', 'cat');
    open.push(c);
    for (let i = 0; i < 2; i++) {
      expect(
        (await a.request('exchangeCandidate', { to: c.socketId, candidate: candidate(i) })).s,
      ).toBe(true);
    }
    await gw3.process.kill();
    await sleep(300);
    const started = Date.now();
    expect(
      await a.request('exchangeCandidate', { to: c.socketId, candidate: candidate(3) }),
    ).toMatchObject({
      s: false,
      e: SOCKET_ID_DOES_NOT_EXIST,
    });
    expect(Date.now() - started).toBeLessThan(2000);
    a.close();
  });

  it('bad batches get an error reply and reach nobody', async () => {
    const a = await join(sp.gw1.url, 'room-bad-batch', 'an');
    const gw1 = await gatewayOf('room-bad-batch', a.socketId);
    const event = {
      a: 'eventExchangeCandidate',
      d: { from: { socketId: a.socketId, userId: 'an' }, candidate: candidate(1) },
    };
    for (const junk of [
      'not json',
      '{}',
      { items: [] },
      { items: [{ to: a.socketId, roomId: 'room-bad-batch' }] },
      // Not an event a relay may carry.
      { items: [{ to: a.socketId, roomId: 'room-bad-batch', event: { a: 'eventJoin', d: {} } }] },
      {
        items: Array.from({ length: 257 }, () => ({
          to: a.socketId,
          roomId: 'room-bad-batch',
          event,
        })),
      },
    ]) {
      expect(await sendBatch(gw1, junk)).toMatchObject({ ok: false });
    }
    await sleep(200);
    expect(a.events('eventExchangeCandidate')).toEqual([]);
    expect(sp.gw1.process.running).toBe(true);
    a.close();
  });
});
