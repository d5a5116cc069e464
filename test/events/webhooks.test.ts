/**
 * Webhooks of room events (services/events/src/webhooks): the events service POSTs every
 * durable room event, signed, to real local HTTP receivers — through an outage of the
 * receiver (HTTP 500s and hung requests), to an endpoint that always fails (parked, while a
 * second endpoint gets everything), across the SIGKILL of the leading replica — with real
 * clients joining and leaving rooms on the real platform (NATS JetStream, PostgreSQL, the
 * rooms service, two gateways).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { NODE, ROOT, waitFor } from '@switchboard/devstack';
import {
  DURABLE_ROOM_EVENTS,
  RoomsAdmin,
  WebhookHeaders,
  parkedWebhook,
  roomEventStream,
  webhookBody,
  webhookConsumer,
  webhookParkedStream,
  type ParkedWebhook,
} from '@switchboard/protocol';
import { signWebhook, verifyWebhook } from '@switchboard/client/webhooks';
import { verifySwitchboardWebhook } from '../../docs/webhook-verify.mjs';
import { endpointHash } from '../../services/events/src/webhooks/settings.ts';
import { runToExit } from '../platform/run-to-exit.ts';
import { joinVia, type TestClient } from '../signaling/client.ts';
import { isLeader, useEventsPlatform, type EventsPlatform, type StoredEvent } from './platform.ts';

const execFileP = promisify(execFile);
const KEY_ID = 'webhook-key';
const SECRET = 'whsec-0123456789abcdef0123456789abcdef-test';
const API_KEYS = `other-key:${'o'.repeat(40)},${KEY_ID}:${SECRET}`;

// ---------------------------------------------------------------------------- receivers

interface Received {
  raw: string;
  headers: IncomingMessage['headers'];
  at: number;
  /** What the receiver answered (0: it hung). */
  status: number;
  body: {
    id: string;
    event: string;
    createdAt: number;
    roomId: string;
    data: StoredEvent['data'];
  };
}

type Answer = 'ok' | 'fail' | 'hang';

/** A real HTTP receiver on 127.0.0.1 whose answers the test decides. */
class Receiver {
  readonly received: Received[] = [];
  decide: (n: number) => Answer = () => 'ok';
  delayMs = 0;
  readonly #server: Server;
  readonly #hung: ServerResponse[] = [];
  #n = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<Receiver> {
    const box: { self?: Receiver } = {};
    const server = createServer((req, res) => {
      box.self?.handle(req, res);
    });
    const self = new Receiver(server);
    box.self = self;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get url(): string {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') throw new Error('not listening');
    return `http://127.0.0.1:${String(a.port)}/hooks/switchboard?token=t0p-secret-in-url`;
  }

  /** Only the answered ones (2xx). */
  get accepted(): Received[] {
    return this.received.filter((r) => r.status === 200);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = this.decide(this.#n++);
      const raw = Buffer.concat(chunks).toString('utf8');
      const status = answer === 'ok' ? 200 : answer === 'fail' ? 500 : 0;
      this.received.push({
        raw,
        headers: req.headers,
        at: Date.now(),
        status,
        body: JSON.parse(raw) as Received['body'],
      });
      if (answer === 'hang') {
        this.#hung.push(res);
        return;
      }
      setTimeout(() => {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(answer === 'ok' ? 'thanks' : 'x'.repeat(200_000));
      }, this.delayMs);
    });
  }

  async close(): Promise<void> {
    for (const r of this.#hung) r.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.#server.close(() => {
        resolve();
      }),
    );
  }
}

// ------------------------------------------------------------------------------ platform

let sp: EventsPlatform;
const receivers: Receiver[] = [];
const open: TestClient[] = [];

useEventsPlatform(
  open,
  (p) => {
    sp = p;
  },
  receivers,
);

const join = joinVia(() => sp, open);

async function receiver(): Promise<Receiver> {
  const r = await Receiver.start();
  receivers.push(r);
  return r;
}

/** An events replica delivering to `urls`, ready. */
async function startEvents(label: string, urls: string[], env: Record<string, string> = {}) {
  return await sp.startReplica(label, {
    LEADER_LEASE_MS: '600',
    API_KEYS,
    WEBHOOK_URLS: urls.join(','),
    WEBHOOK_API_KEY: KEY_ID,
    WEBHOOK_TIMEOUT_MS: '800',
    WEBHOOK_BACKOFF_MIN_MS: '50',
    WEBHOOK_BACKOFF_MAX_MS: '400',
    ...env,
  });
}

/** Stop the events replicas of earlier tests (one that failed may have left its own). */
async function stopEvents(): Promise<void> {
  for (const s of sp.replicas) if (s.process.running) await s.stop();
}

/** Until the endpoint's consumer exists (it takes events from its creation on). */
async function consumerReady(url: string): Promise<void> {
  await waitFor(
    'the webhook consumer',
    async () => {
      try {
        await sp.jsm.consumers.info(roomEventStream(sp.prefix), webhookConsumer(endpointHash(url)));
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 20_000 },
  );
}

/** `n` members join room `roomId` (over both gateways), then all leave. */
async function churn(roomId: string, n: number, rename = false): Promise<void> {
  const members: TestClient[] = [];
  for (let i = 0; i < n; i++) {
    members.push(await join(i % 2 === 0 ? 'gw1' : 'gw2', roomId, `u${String(i)}`));
  }
  // The server API's change of a member: participant.updated, in the room's order.
  if (rename) {
    await sp.bus.request(RoomsAdmin.updateParticipant, {
      roomId,
      socketId: members[0]?.socketId ?? '',
      name: 'renamed',
    });
  }
  for (const c of members) c.close(1000);
}

/** Each room's events are all in the stream: created, the joins, an update, the leaves, closed. */
async function allStored(
  rooms: string[],
  perRoom: number,
  timeoutMs = 30_000,
): Promise<StoredEvent[]> {
  let events: StoredEvent[] = [];
  await waitFor(
    'the rooms’ events in the stream',
    async () => {
      events = await sp.stored(...rooms);
      return events.length === rooms.length * perRoom;
    },
    { timeoutMs },
  );
  return events;
}

/** Until every stored event was accepted by `r` at least once. */
async function allAccepted(r: Receiver, events: StoredEvent[], timeoutMs = 45_000): Promise<void> {
  const missing = (): StoredEvent[] => {
    const ids = new Set(r.accepted.map((x) => x.body.id));
    return events.filter((e) => !ids.has(e.data.id));
  };
  await waitFor('every event accepted by the receiver', async () => missing().length === 0, {
    timeoutMs,
  }).catch((err: unknown) => {
    const what = missing()
      .slice(0, 10)
      .map((e) => `${e.data.roomId}#${String(e.data.seq)} (stream ${String(e.seq)})`);
    const logs = sp.replicas
      .filter((s) => s.process.running)
      .map((s) => `${s.process.name}:\n${s.process.output().split('\n').slice(-40).join('\n')}`);
    throw new Error(
      `${String(missing().length)} not accepted (${what.join(', ')}); ${String(r.received.length)} requests\n${logs.join('\n')}`,
      { cause: err },
    );
  });
}

/** The value of metric `name` whose labels include `labels` (NaN: no such series). */
function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = new Map(
      [...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1] ?? '', x[2] ?? '']),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return NaN;
}

/**
 * What every webhook must satisfy: a valid body carrying the stored event exactly, the
 * headers, a signature that verifies; duplicates identical; per room, events first arrive in
 * `seq` order with no gap.
 */
function expectWellDelivered(received: Received[], events: StoredEvent[]): void {
  const byId = new Map(events.map((e) => [e.data.id, e]));
  const firstBody = new Map<string, string>();
  const firstSeqs = new Map<string, number[]>();
  for (const r of received) {
    const e = byId.get(r.body.id);
    if (e === undefined) continue;
    expect(webhookBody.check(r.body)).toBe(true);
    expect(r.body).toEqual({
      id: e.data.id,
      event: sp.eventName(e.subject),
      createdAt: e.data.ts,
      roomId: e.data.roomId,
      data: e.data,
    });
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['user-agent']).toMatch(/^Switchboard-Webhooks\/\d+\.\d+\.\d+$/);
    expect(r.headers[WebhookHeaders.eventId]).toBe(e.data.id);
    expect(r.headers[WebhookHeaders.key]).toBe(KEY_ID);
    const sig = r.headers[WebhookHeaders.signature];
    expect(typeof sig).toBe('string');
    expect(verifyWebhook(r.raw, sig as string, SECRET)).toBe(true);
    const prev = firstBody.get(r.body.id);
    if (prev === undefined) {
      firstBody.set(r.body.id, r.raw);
      const seqs = firstSeqs.get(e.data.roomId) ?? [];
      seqs.push(e.data.seq);
      firstSeqs.set(e.data.roomId, seqs);
    } else {
      // A duplicate: the same event, byte for byte.
      expect(r.raw).toBe(prev);
    }
  }
  for (const [room, seqs] of firstSeqs) {
    expect(seqs, room).toEqual(seqs.map((_, i) => i + 1));
  }
}

// --------------------------------------------------------------------------------- tests

describe('webhooks', () => {
  it('an outage of the receiver (500s, hung requests): every event arrives, per room in order, signed', async () => {
    const r = await receiver();
    // Nothing is parked however long the outage lasts on a loaded machine.
    const svc = await startEvents('events-outage', [r.url], { WEBHOOK_MAX_ATTEMPTS: '1000' });
    await consumerReady(r.url);
    // The receiver fails for a while: mostly 500s, every fifth request hangs past the
    // timeout; then it recovers.
    let recovered = false;
    r.decide = (n) => (recovered ? 'ok' : n % 5 === 4 ? 'hang' : 'fail');
    const rooms = Array.from({ length: 12 }, (_, i) => `wh-outage-${String(i)}`);
    await Promise.all(
      rooms.map(async (room) => {
        await churn(room, 3, true);
      }),
    );
    const events = await allStored(rooms, 9);
    await waitFor('failures and hung requests', async () => r.received.length >= 15);
    expect(r.received.some((x) => x.status === 0)).toBe(true);
    await new Promise((res) => setTimeout(res, 1500));
    recovered = true;
    await allAccepted(r, events);
    expectWellDelivered(r.received, events);
    // Per room, every request (retries included) came in order: a room's next event is
    // only sent once the previous one was accepted.
    for (const room of rooms) {
      const seqs = r.received.filter((x) => x.body.roomId === room).map((x) => x.body.data.seq);
      for (let i = 1; i < seqs.length; i++) {
        expect(seqs[i] ?? 0, room).toBeGreaterThanOrEqual(seqs[i - 1] ?? 0);
        expect((seqs[i] ?? 0) - (seqs[i - 1] ?? 0), room).toBeLessThanOrEqual(1);
      }
    }
    // Every kind of event this traffic makes (the track events need media, and go through
    // the same code: nothing in delivery is per event kind).
    const kinds = new Set(events.map((e) => sp.eventName(e.subject)));
    expect([...kinds].sort()).toEqual(
      DURABLE_ROOM_EVENTS.filter((k) => !k.startsWith('track.')).sort(),
    );

    // Signatures: a tampered body, another secret or an old timestamp fail; so does the
    // the events page's snippet (docs/webhook-verify.mjs), which accepts the genuine one.
    const one = r.accepted[0];
    if (one === undefined) throw new Error('nothing accepted');
    const header = one.headers[WebhookHeaders.signature] as string;
    const t = Number(/t=(\d+)/.exec(header)?.[1]);
    expect(verifyWebhook(`${one.raw} `, header, SECRET)).toBe(false);
    expect(verifyWebhook(one.raw.replace('"seq":', '"seq": '), header, SECRET)).toBe(false);
    expect(verifyWebhook(one.raw, header, 'another-secret-0123456789abcdef01')).toBe(false);
    expect(verifyWebhook(one.raw, header, SECRET, { nowS: t + 301 })).toBe(false);
    expect(verifyWebhook(one.raw, header, SECRET, { nowS: t + 299 })).toBe(true);
    const old = signWebhook(one.raw, SECRET, Math.floor(Date.now() / 1000) - 600);
    expect(verifyWebhook(one.raw, old, SECRET)).toBe(false);
    expect(verifySwitchboardWebhook(one.raw, header, SECRET)).toBe(true);
    expect(verifySwitchboardWebhook(one.raw, old, SECRET)).toBe(false);
    expect(verifySwitchboardWebhook(`${one.raw} `, header, SECRET)).toBe(false);
    expect(
      verifySwitchboardWebhook(
        one.raw,
        header.replace(/v1=(.)/, (_m, c: string) => `v1=${c === '0' ? '1' : '0'}`),
        SECRET,
      ),
    ).toBe(false);
    expect(verifySwitchboardWebhook(one.raw, undefined, SECRET)).toBe(false);
    // The events page (docs/events.md) shows that very file.
    const snippet = readFileSync(joinPath(ROOT, 'docs/webhook-verify.mjs'), 'utf8').trimEnd();
    expect(readFileSync(joinPath(ROOT, 'docs', 'events.md'), 'utf8')).toContain(snippet);
    // Key rotation: a header with two signatures verifies under either secret.
    const both = signWebhook(one.raw, [SECRET, 'n'.repeat(32)], Math.floor(Date.now() / 1000));
    expect(verifyWebhook(one.raw, both, 'n'.repeat(32))).toBe(true);
    expect(verifySwitchboardWebhook(one.raw, both, SECRET)).toBe(true);

    const metrics = await svc.metrics();
    const hash = endpointHash(r.url);
    const endpoint = { endpoint: hash };
    expect(
      metric(metrics, 'sb_events_webhook_deliveries_total', { ...endpoint, result: 'failed' }),
    ).toBeGreaterThan(0);
    expect(metric(metrics, 'sb_events_webhook_delivered_total', endpoint)).toBeGreaterThanOrEqual(
      events.length,
    );
    expect(metric(metrics, 'sb_events_webhook_parked_total', endpoint)).toBe(0);
    expect(metric(metrics, 'sb_events_webhook_lag_seconds_count', endpoint)).toBeGreaterThanOrEqual(
      events.length,
    );
    expect(metric(metrics, 'sb_events_webhook_pending', endpoint)).toBe(0);
    // The URL (its token) is never in a metric nor in the log.
    expect(metrics).not.toContain('t0p-secret');
    expect(svc.process.output()).not.toContain('t0p-secret');
    expect(svc.process.output()).not.toContain(SECRET);
    await svc.stop();
  }, 120_000);

  it('an endpoint that always fails: its events are parked after WEBHOOK_MAX_ATTEMPTS; another endpoint gets them all', async () => {
    await stopEvents();
    const bad = await receiver();
    const good = await receiver();
    bad.decide = () => 'fail';
    const badHash = endpointHash(bad.url);
    const previous = receivers[0];
    const svc = await startEvents('events-park', [bad.url, good.url], {
      WEBHOOK_MAX_ATTEMPTS: '3',
      WEBHOOK_BACKOFF_MIN_MS: '20',
      WEBHOOK_BACKOFF_MAX_MS: '50',
    });
    await consumerReady(bad.url);
    await consumerReady(good.url);
    // The endpoint of the previous test is no longer configured: its consumer is gone.
    if (previous !== undefined) {
      await waitFor('the stale consumer deleted', async () => {
        const names: string[] = [];
        for await (const ci of sp.jsm.consumers.list(roomEventStream(sp.prefix)))
          names.push(ci.name);
        return !names.includes(webhookConsumer(endpointHash(previous.url)));
      });
    }
    const rooms = ['wh-park-a', 'wh-park-b'];
    await Promise.all(
      rooms.map(async (room) => {
        await churn(room, 2);
      }),
    );
    const events = await allStored(rooms, 6);
    await allAccepted(good, events);
    expectWellDelivered(good.received, events);

    // Each event: three attempts at the bad endpoint, parked, then the room's next one.
    const parkedStream = webhookParkedStream(sp.prefix);
    let parked: ParkedWebhook[] = [];
    await waitFor('every event parked', async () => {
      parked = [];
      const info = await sp.jsm.streams.info(parkedStream).catch(() => undefined);
      if (info === undefined) return false;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
        const m = await sp.jsm.streams.getMessage(parkedStream, { seq });
        const p = parkedWebhook.parse(m?.json());
        if (p.ok) parked.push(p.value);
      }
      return parked.length === events.length;
    });
    expect(bad.received).toHaveLength(3 * events.length);
    for (const room of rooms) {
      const seqs = bad.received.filter((x) => x.body.roomId === room).map((x) => x.body.data.seq);
      expect(seqs).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6]);
    }
    const goodBody = new Map(good.accepted.map((x) => [x.body.id, x.raw]));
    for (const p of parked) {
      expect(p).toMatchObject({ endpoint: badHash, attempts: 3, error: 'HTTP 500' });
      expect(p.body).toBe(goodBody.get(p.eventId ?? ''));
      expect(p.subject).toMatch(/\.room\.(created|join|leave|closed)$/);
    }
    const metrics = await svc.metrics();
    expect(metric(metrics, 'sb_events_webhook_parked_total', { endpoint: badHash })).toBe(
      events.length,
    );
    expect(
      metric(metrics, 'sb_events_webhook_deliveries_total', {
        endpoint: badHash,
        result: 'failed',
      }),
    ).toBe(3 * events.length);

    // The admin command lists them, and replays them once the endpoint is back.
    const env = {
      ...sp.toolEnv('events'),
      API_KEYS,
      WEBHOOK_URLS: [bad.url, good.url].join(','),
      WEBHOOK_API_KEY: KEY_ID,
    };
    const admin = joinPath(ROOT, 'services/events/src/webhooks-admin.ts');
    const list = await execFileP(NODE, [admin, 'list', '--endpoint', badHash], { env });
    expect(list.stdout.trim().split('\n')).toHaveLength(events.length);
    bad.decide = () => 'ok';
    const before = bad.accepted.length;
    const replay = await execFileP(NODE, [admin, 'replay', '--room', 'wh-park-a'], { env });
    expect(replay.stdout.trim().split('\n')).toHaveLength(6);
    const replayed = bad.accepted.slice(before);
    expect(replayed.map((x) => x.raw)).toEqual(
      parked.filter((p) => p.roomId === 'wh-park-a').map((p) => p.body),
    );
    for (const x of replayed) {
      expect(verifyWebhook(x.raw, x.headers[WebhookHeaders.signature] as string, SECRET)).toBe(
        true,
      );
    }
    const left = await execFileP(NODE, [admin, 'list'], { env });
    expect(left.stdout.trim().split('\n')).toHaveLength(6);
    expect(left.stdout).not.toContain('wh-park-a');
    await svc.stop();
  }, 120_000);

  it('failover: the leader is killed mid-stream; nothing is lost, each room stays in order', async () => {
    await stopEvents();
    const r = await receiver();
    r.delayMs = 30;
    const a = await startEvents('events-fo-a', [r.url]);
    const b = await startEvents('events-fo-b', [r.url]);
    await consumerReady(r.url);
    await waitFor('a leader', async () => (await isLeader(a)) || (await isLeader(b)));
    const leader = (await isLeader(a)) ? a : b;
    const rooms = Array.from({ length: 16 }, (_, i) => `wh-fo-${String(i)}`);
    const first = rooms.slice(0, 8);
    const second = rooms.slice(8);
    const churning = Promise.all(
      first.map(async (room) => {
        await churn(room, 3);
      }),
    );
    await waitFor('deliveries under way', async () => r.accepted.length >= 10);
    await leader.process.kill();
    await churning;
    await Promise.all(
      second.map(async (room) => {
        await churn(room, 3);
      }),
    );
    const events = await allStored(rooms, 8);
    await allAccepted(r, events, 60_000);
    expectWellDelivered(r.received, events);
    const survivor = leader === a ? b : a;
    await waitFor('the survivor leading', async () => await isLeader(survivor));
  }, 150_000);

  it('a graceful stop mid-stream (SIGTERM): in-flight deliveries finish or go back; the other replica goes on at once', async () => {
    await stopEvents();
    const r = await receiver();
    r.delayMs = 150;
    const a = await startEvents('events-gs-a', [r.url]);
    await consumerReady(r.url);
    await waitFor('a leader', async () => await isLeader(a));
    const b = await startEvents('events-gs-b', [r.url]);
    const rooms = Array.from({ length: 8 }, (_, i) => `wh-gs-${String(i)}`);
    await Promise.all(
      rooms.map(async (room) => {
        await churn(room, 3);
      }),
    );
    const events = await allStored(rooms, 8);
    await waitFor('deliveries under way', async () => r.accepted.length >= 8);
    expect(await a.stop()).toBe(0);
    const stoppedAt = Date.now();
    const left = events.length - new Set(r.accepted.map((x) => x.body.id)).size;
    await allAccepted(r, events, 30_000);
    // The other replica went on without waiting for an ack_wait (2 × 800 + 5000 ms): the
    // stopped leader gave back what it held.
    if (left > 0) {
      const next = r.received.find((x) => x.at >= stoppedAt);
      expect((next?.at ?? Infinity) - stoppedAt).toBeLessThan(4000);
    }
    expectWellDelivered(r.received, events);
    await waitFor('the other replica leading', async () => await isLeader(b));
  }, 120_000);

  it('WEBHOOK_URLS without a valid WEBHOOK_API_KEY: exit 78 naming it, echoing no URL or secret', async () => {
    const run = async (env: Record<string, string>) =>
      await runToExit('events', {
        HTTP_PORT: '0',
        WEBHOOK_URLS: 'https://hooks.example.com/t0p-secret-path',
        ...env,
      });
    const none = await run({});
    expect(none.code).toBe(78);
    expect(none.output).toMatch(/WEBHOOK_API_KEY: is required with WEBHOOK_URLS/);
    const unknown = await run({ WEBHOOK_API_KEY: 'missing-key', API_KEYS });
    expect(unknown.code).toBe(78);
    expect(unknown.output).toMatch(/WEBHOOK_API_KEY: key missing-key is not in API_KEYS/);
    const notHttp = await run({
      WEBHOOK_API_KEY: KEY_ID,
      API_KEYS,
      WEBHOOK_URLS: 'ftp://files.example.com/t0p-secret-path',
    });
    expect(notHttp.code).toBe(78);
    expect(notHttp.output).toMatch(/WEBHOOK_URLS: /);
    for (const out of [none.output, unknown.output, notHttp.output]) {
      expect(out).not.toContain('t0p-secret');
      expect(out).not.toContain(SECRET);
    }
  });
});
