/**
 * Hosts, calls and presence on the running platform (two gateways on JetStream, one more in
 * memory mode, the rooms service, real NATS): a caller on one gateway calls a host on the
 * other by name; offers wait for an absent host inside their timeout; answerers of one host
 * share offers, each once; a caller that gives up withdraws its offer everywhere; grants are
 * enforced and a callId seen or guessed reaches nothing; presence goes online, offline after
 * the read deadline, and stays online through a resume.
 */
import { describe, expect, it } from 'vitest';
import { mintToken, type ServiceProcess } from '@switchboard/devstack';
import {
  ErrorCodes,
  hostSubjects,
  presenceChange,
  type PresenceChange,
} from '@switchboard/protocol';
import { TestClient, type Frame } from './client.ts';
import { candidate, sdp, sleep } from './fixtures.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

const E = Object.fromEntries(Object.entries(ErrorCodes).map(([k, v]) => [k, v.code])) as Record<
  keyof typeof ErrorCodes,
  number
>;
/** Presence: heartbeats every 400 ms, offline after 2 × 400 + 400 = 1.2 s of silence. */
const PRESENCE = { HOST_PRESENCE_INTERVAL_MS: '400', HOST_READ_DEADLINE_GRACE_MS: '400' };
const MAX_PENDING = 4;

let sp: SignalingPlatform;
let memGw: ServiceProcess;
const open: TestClient[] = [];
const changes: PresenceChange[] = [];

useSignaling(
  open,
  async (p) => {
    sp = p;
    memGw = await sp.spawn('gateway', 'gateway-memory', {
      ...PRESENCE,
      CALL_QUEUE: 'memory',
      CALL_MAX_PENDING_PER_HOST: String(MAX_PENDING),
    });
    sp.bus.subscribe(hostSubjects.presenceAll(sp.bus.prefix), presenceChange, (c) => {
      changes.push(c);
    });
  },
  {
    ...PRESENCE,
    CALL_MAX_PENDING_PER_HOST: String(MAX_PENDING),
  },
);

type Gw = 'gw1' | 'gw2' | 'mem';
const url = (gw: Gw): string => (gw === 'mem' ? memGw.url : sp[gw].url);

/** Until `pred` holds (checked every 50 ms), at most `timeoutMs`. */
async function until(pred: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function connect(gw: Gw): Promise<TestClient> {
  const c = await TestClient.connect(url(gw));
  open.push(c);
  return c;
}

/** A caller signed in without a room, granted `call`. */
async function caller(gw: Gw, call: string[] | undefined, sub = 'caller'): Promise<TestClient> {
  const c = await connect(gw);
  const r = await c.request('authenticate', {
    bearer: await mintToken({ sub, rooms: [], extra: call === undefined ? {} : { call } }),
  });
  expect(r.s, JSON.stringify(r)).toBe(true);
  return c;
}

/** A host online as `name`. */
async function host(
  gw: Gw,
  name: string,
  instance?: string,
): Promise<{ c: TestClient; reply: Frame }> {
  const c = await connect(gw);
  const reply = await c.request('hostOnline', {
    bearer: await mintToken({ sub: `host-${name}`, rooms: [], extra: { host: name } }),
    ...(instance === undefined ? {} : { instance }),
  });
  expect(reply.s, JSON.stringify(reply)).toBe(true);
  return { c, reply };
}

/** `c` pings every 300 ms for `ms` (a host's heartbeats), then falls silent. */
async function heartbeats(c: TestClient, ms: number): Promise<void> {
  const beat = setInterval(() => {
    c.sendRaw(JSON.stringify({ a: 'ping', d: {} }));
  }, 300);
  try {
    await sleep(ms);
  } finally {
    clearInterval(beat);
  }
}

/** Send a request with an explicit id, without waiting for its reply. */
function send(c: TestClient, a: string, d: unknown, id: string): void {
  c.sendRaw(JSON.stringify({ a, d, id }));
}

async function reply(c: TestClient, a: string, id: string, timeoutMs = 10_000): Promise<Frame> {
  return await c.waitFor((f) => f.id === id && f.a === `${a}R`, timeoutMs, `${a}R ${id}`);
}

function callOf(f: Frame): { callId: string; from: { userId: string }; timeoutMs: number } {
  return f.d as { callId: string; from: { userId: string }; timeoutMs: number };
}

describe('calls to named hosts', () => {
  it('a caller on one gateway calls a host on the other: offer, answer, trickle both ways', async () => {
    const h = await host('gw2', 'cam-1');
    expect(h.reply.d).toMatchObject({
      host: 'cam-1',
      presenceIntervalMs: 400,
      readDeadlineMs: 1200,
    });
    const c = await caller('gw1', ['cam-*'], 'alice');

    send(c, 'callHost', { host: 'cam-1', sdp: sdp('offer', 'c1'), timeoutMs: 10_000 }, 'call-1');
    const ring = await h.c.event('eventCall');
    const { callId, from, timeoutMs } = callOf(ring);
    expect(from.userId).toBe('alice');
    expect(timeoutMs).toBeGreaterThan(5000);
    expect((ring.d as { sdp: unknown }).sdp).toEqual(sdp('offer', 'c1'));

    // The host trickles at once, even before its answer: the caller gets the answer
    // (callHostR, which tells it the callId) first, then the candidates in order.
    send(h.c, 'exchangeCallCandidate', { callId, candidate: candidate(1) }, 'hc1');
    const a = await h.c.request('answerCall', { callId, sdp: sdp('answer', 'h1') });
    expect(a.s).toBe(true);
    expect((await reply(h.c, 'exchangeCallCandidate', 'hc1')).s).toBe(true);
    send(h.c, 'exchangeCallCandidate', { callId, candidate: candidate(4) }, 'hc4');
    const r = await reply(c, 'callHost', 'call-1');
    expect(r.s, JSON.stringify(r)).toBe(true);
    expect(r.d).toEqual({ callId, sdp: sdp('answer', 'h1') });
    await c.waitFor(
      (f) =>
        f.a === 'eventCallCandidate' &&
        f.d !== undefined &&
        c.events('eventCallCandidate').length === 2,
      5000,
    );
    const got = c.events('eventCallCandidate');
    expect(got.map((f) => f.d)).toEqual([
      { callId, candidate: candidate(1) },
      { callId, candidate: candidate(4) },
    ]);
    // Nothing about the call came before its answer.
    expect(c.frames.indexOf(got[0] as Frame)).toBeGreaterThan(c.frames.indexOf(r));
    expect((await c.request('exchangeCallCandidate', { callId, candidate: candidate(2) })).s).toBe(
      true,
    );
    const cc = await h.c.event('eventCallCandidate');
    expect(cc.d).toEqual({ callId, candidate: candidate(2) });

    // A callId seen (or guessed) by another connection reaches nothing.
    const other = await caller('gw2', ['*'], 'mallory');
    for (const [a2, d] of [
      ['exchangeCallCandidate', { callId, candidate: candidate(3) }],
      ['answerCall', { callId, sdp: sdp('answer', 'x') }],
      ['rejectCall', { callId }],
    ] as const) {
      const e = await other.request(a2, d);
      expect(e.e, a2).toBe(E.CALL_NOT_FOUND);
    }
    // The host cannot answer twice.
    expect((await h.c.request('answerCall', { callId, sdp: sdp('answer', 'h2') })).e).toBe(
      E.CALL_NOT_FOUND,
    );
  });

  it('grants: no call grant, a pattern that does not cover the host, no host grant, no sign-in', async () => {
    await host('gw1', 'robot-1');
    const none = await caller('gw2', undefined, 'nobody');
    expect((await none.request('callHost', { host: 'robot-1', sdp: sdp('offer', 'x') })).e).toBe(
      E.PERMISSION_DENIED,
    );
    const cams = await caller('gw2', ['cam-*'], 'cams-only');
    expect((await cams.request('callHost', { host: 'robot-1', sdp: sdp('offer', 'x') })).e).toBe(
      E.PERMISSION_DENIED,
    );
    // listHosts shows only what the token may call.
    const listed = await cams.request('listHosts', {});
    expect(listed.s).toBe(true);
    const names = (listed.d as { hosts: { host: string }[] }).hosts.map((h) => h.host);
    expect(names).not.toContain('robot-1');

    const fresh = await connect('gw1');
    expect((await fresh.request('callHost', { host: 'robot-1', sdp: sdp('offer', 'x') })).e).toBe(
      E.USER_NOT_AUTHENTICATED,
    );
    expect((await fresh.request('listHosts', {})).e).toBe(E.USER_NOT_AUTHENTICATED);
    const noHost = await connect('gw1');
    const r = await noHost.request('hostOnline', {
      bearer: await mintToken({ sub: 'not-a-host', rooms: [] }),
    });
    expect(r.e).toBe(E.PERMISSION_DENIED);
    // A bad token signs nothing in.
    const bad = await connect('gw1');
    expect((await bad.request('authenticate', { bearer: 'garbage' })).e).toBe(E.AUTH_FAILED);
    // An answer to no call of one's own.
    expect(
      (await cams.request('answerCall', { callId: 'a'.repeat(32), sdp: sdp('answer', 'x') })).e,
    ).toBe(E.CALL_NOT_FOUND);
  });

  it('an unknown host is HOST_UNAVAILABLE; a refusal is CALL_REJECTED', async () => {
    const c = await caller('gw1', ['*']);
    expect((await c.request('callHost', { host: 'never-seen', sdp: sdp('offer', 'x') })).e).toBe(
      E.HOST_UNAVAILABLE,
    );
    const h = await host('gw2', 'kiosk-1');
    send(c, 'callHost', { host: 'kiosk-1', sdp: sdp('offer', 'k') }, 'k1');
    const { callId } = callOf(await h.c.event('eventCall'));
    expect((await h.c.request('rejectCall', { callId, reason: 'busy' })).s).toBe(true);
    expect((await reply(c, 'callHost', 'k1')).e).toBe(E.CALL_REJECTED);
  });

  it('an offline host that comes back inside the timeout gets the call; after it, CALL_TIMEOUT', async () => {
    const first = await host('gw1', 'agent-1', 'instance-agent-1');
    first.c.close(1000); // offline now (a normal close)
    await until(() => changes.some((ch) => ch.host === 'agent-1' && ch.status === 'offline'), 5000);
    const c = await caller('gw2', ['agent-*']);
    send(c, 'callHost', { host: 'agent-1', sdp: sdp('offer', 'late'), timeoutMs: 1000 }, 'late');
    expect((await reply(c, 'callHost', 'late', 5000)).e).toBe(E.CALL_TIMEOUT);

    send(c, 'callHost', { host: 'agent-1', sdp: sdp('offer', 'wait'), timeoutMs: 15_000 }, 'wait');
    await sleep(1000);
    const back = await host('gw1', 'agent-1', 'instance-agent-1');
    const ring = await back.c.event('eventCall');
    // Only the call still waiting: the timed-out one was withdrawn.
    expect((ring.d as { sdp: { sdp: string } }).sdp.sdp).toContain('wait');
    await sleep(300);
    expect(back.c.events('eventCall')).toHaveLength(1);
    await back.c.request('answerCall', { callId: callOf(ring).callId, sdp: sdp('answer', 'b') });
    expect((await reply(c, 'callHost', 'wait')).s).toBe(true);
  });

  it('two answerers of one host share its offers, each offer answered once', async () => {
    const a = await host('gw1', 'pool-1', 'instance-pool-a');
    const b = await host('gw2', 'pool-1', 'instance-pool-b');
    const c = await caller('gw1', ['pool-1']);
    const answerAll = (h: TestClient): (() => void) => {
      let seen = 0;
      const t = setInterval(() => {
        const calls = h.events('eventCall');
        for (const f of calls.slice(seen)) {
          const { callId } = callOf(f);
          // Answered through the request API (ids auto), not awaited here.
          h.sendRaw(JSON.stringify({ a: 'answerCall', d: { callId, sdp: sdp('answer', callId) } }));
        }
        seen = calls.length;
      }, 20);
      return () => {
        clearInterval(t);
      };
    };
    const stopA = answerAll(a.c);
    const stopB = answerAll(b.c);
    // Rounds of MAX_PENDING at once (the most that may wait for one host here).
    const N = 3 * MAX_PENDING;
    const replies: Frame[] = [];
    for (let round = 0; round < N / MAX_PENDING; round++) {
      const ids = Array.from({ length: MAX_PENDING }, (_, i) => `p${round * MAX_PENDING + i}`);
      for (const id of ids) send(c, 'callHost', { host: 'pool-1', sdp: sdp('offer', id) }, id);
      replies.push(...(await Promise.all(ids.map(async (id) => await reply(c, 'callHost', id)))));
    }
    stopA();
    stopB();
    expect(replies.filter((r) => r.s !== true)).toEqual([]);
    // Both answerers took some.
    expect(a.c.events('eventCall').length).toBeGreaterThan(0);
    expect(b.c.events('eventCall').length).toBeGreaterThan(0);
    const ids = [...a.c.events('eventCall'), ...b.c.events('eventCall')].map(
      (f) => callOf(f).callId,
    );
    expect(ids).toHaveLength(N);
    expect(new Set(ids).size).toBe(N);
    // The answer each caller got is the one its own offer was answered with.
    for (const r of replies) {
      const d = r.d as { callId: string; sdp: { sdp: string } };
      expect(d.sdp.sdp).toContain(d.callId);
    }
  });

  it('a caller that gives up (cancelCall, or closing) withdraws its offer everywhere', async () => {
    const h = await host('gw2', 'cancel-1');
    const c = await caller('gw1', ['cancel-1']);
    send(c, 'callHost', { host: 'cancel-1', sdp: sdp('offer', 'x') }, 'x1');
    const { callId } = callOf(await h.c.event('eventCall'));
    expect((await c.request('cancelCall', { id: 'x1' })).s).toBe(true);
    expect((await reply(c, 'callHost', 'x1')).e).toBe(E.CANCELLED);
    const cancelled = await h.c.event('eventCallCancelled');
    expect(cancelled.d).toEqual({ callId, reason: 'cancelled' });
    expect((await h.c.request('answerCall', { callId, sdp: sdp('answer', 'x') })).e).toBe(
      E.CALL_NOT_FOUND,
    );
    expect((await c.request('cancelCall', { id: 'nope' })).e).toBe(E.CALL_NOT_FOUND);

    const c2 = await caller('gw1', ['cancel-1']);
    send(c2, 'callHost', { host: 'cancel-1', sdp: sdp('offer', 'y') }, 'y1');
    const second = callOf(await h.c.event('eventCall', 10_000, h.c.frames.indexOf(cancelled) + 1));
    c2.close();
    await h.c.waitFor(
      (f) => f.a === 'eventCallCancelled' && callOf(f).callId === second.callId,
      10_000,
    );
  });

  it('a host whose socket drops while ringing: the offer goes to another answerer', async () => {
    const a = await host('gw1', 'drop-1', 'instance-drop-a');
    const c = await caller('gw2', ['drop-1']);
    send(c, 'callHost', { host: 'drop-1', sdp: sdp('offer', 'd') }, 'd1');
    await a.c.event('eventCall');
    const b = await host('gw2', 'drop-1', 'instance-drop-b');
    a.c.kill();
    const ring = await b.c.event('eventCall', 15_000);
    await b.c.request('answerCall', { callId: callOf(ring).callId, sdp: sdp('answer', 'd') });
    expect((await reply(c, 'callHost', 'd1')).s).toBe(true);
  });

  it('at most CALL_MAX_PENDING_PER_HOST offers wait for one host: then CALL_LIMIT', async () => {
    for (const gw of ['gw1', 'mem'] as const) {
      const name = `full-${gw}`;
      const h = await host(gw, name, `instance-${name}`);
      h.c.close(1000);
      await sleep(200);
      const callers = await Promise.all(
        Array.from({ length: MAX_PENDING + 1 }, async () => await caller(gw, [name])),
      );
      for (const [i, c] of callers.slice(0, MAX_PENDING).entries()) {
        send(c, 'callHost', { host: name, sdp: sdp('offer', `f${i}`), timeoutMs: 20_000 }, 'f');
      }
      await sleep(500);
      const last = callers[MAX_PENDING];
      if (last === undefined) throw new Error('unreachable');
      const r = await last.request('callHost', { host: name, sdp: sdp('offer', 'over') });
      expect(r.e, gw).toBe(E.CALL_LIMIT);
      for (const c of callers) c.close();
    }
  });

  it('the memory queue serves one gateway the same way', async () => {
    const h = await host('mem', 'mem-1');
    const c = await caller('mem', ['mem-*']);
    send(c, 'callHost', { host: 'mem-1', sdp: sdp('offer', 'm') }, 'm1');
    const { callId } = callOf(await h.c.event('eventCall'));
    await h.c.request('exchangeCallCandidate', { callId, candidate: candidate(7) });
    await h.c.request('answerCall', { callId, sdp: sdp('answer', 'm') });
    expect((await reply(c, 'callHost', 'm1')).d).toMatchObject({ callId });
    expect((await c.event('eventCallCandidate')).d).toEqual({ callId, candidate: candidate(7) });
  });
});

describe('presence', () => {
  it('online, offline after the read deadline, subscribers told; a resume keeps it online', async () => {
    const h = await host('gw1', 'pres-1', 'instance-pres-1');
    await until(() => changes.some((c) => c.host === 'pres-1' && c.status === 'online'), 5000);
    const c = await caller('gw2', ['pres-*']);
    const listed = (await c.request('listHosts', {})).d as {
      hosts: { host: string; status: string }[];
    };
    expect(listed.hosts).toContainEqual(
      expect.objectContaining({ host: 'pres-1', status: 'online' }),
    );

    // Heartbeats keep it online past the deadline.
    await heartbeats(h.c, 2500);
    expect(changes.filter((ch) => ch.host === 'pres-1')).toHaveLength(1);

    // Its socket drops; it comes back through the other gateway before the deadline.
    h.c.kill();
    const back = await host('gw2', 'pres-1', 'instance-pres-1');
    await heartbeats(back.c, 2500);
    expect(changes.filter((ch) => ch.host === 'pres-1')).toHaveLength(1);

    // Silent: offline after the read deadline.
    const silentAt = Date.now();
    back.c.kill();
    await until(() => changes.some((ch) => ch.host === 'pres-1' && ch.status === 'offline'), 8000);
    const off = changes.find((ch) => ch.host === 'pres-1' && ch.status === 'offline');
    expect(off?.at).toBeGreaterThanOrEqual(silentAt + 1000);
    const after = (await c.request('listHosts', {})).d as {
      hosts: { host: string; status: string }[];
    };
    expect(after.hosts).toContainEqual(
      expect.objectContaining({ host: 'pres-1', status: 'offline' }),
    );
  });

  it('a host silent with its socket open goes offline, and online again with its next heartbeat', async () => {
    const h = await host('gw2', 'mute-1', 'instance-mute-1');
    await until(() => changes.some((c) => c.host === 'mute-1' && c.status === 'online'), 5000);
    // No `ping` from it (the socket itself stays open and answers WebSocket pings).
    await until(
      () => changes.some((c) => c.host === 'mute-1' && c.status === 'offline'),
      8000,
      'offline',
    );
    expect(h.c.ws.readyState).toBe(h.c.ws.OPEN);
    expect((await h.c.request('ping', {})).s).toBe(true);
    await until(
      () => changes.filter((c) => c.host === 'mute-1' && c.status === 'online').length === 2,
      5000,
      'online again',
    );
  });

  it('a signed-in connection is cut (4003) when its token expires, and the host goes offline', async () => {
    const c = await connect('gw2');
    const r = await c.request('hostOnline', {
      bearer: await mintToken({
        sub: 'short',
        rooms: [],
        extra: { host: 'short-1' },
        expiresInS: 2,
      }),
    });
    expect(r.s).toBe(true);
    const closed = await c.closed;
    expect(closed.code).toBe(4003);
    await until(() => changes.some((ch) => ch.host === 'short-1' && ch.status === 'offline'), 5000);
  });
});
