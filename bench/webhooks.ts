/**
 * `./run bench webhooks [-- flags]`: how long a room event takes to reach a webhook endpoint,
 * beside how long it takes to reach a plain JetStream consumer of the same stream, measured
 * in the same run on the same events.
 *
 * Rooms, a gateway and an events service delivering webhooks (WEBHOOK_URLS) to a healthy
 * local HTTP receiver (node:http, answering 200 at once). Clients join rooms of K through
 * the gateway at R joins per second for S seconds, then leave. For every durable event
 * (created, join, leave, closed):
 *
 * - **webhook lag**: from the event's commit (`ts`, stamped by the rooms service) to the
 *   receiver having the POST's body (outbox → relay → JetStream → the events service's
 *   consumer → a signed POST);
 * - **baseline, stream lag**: from the same `ts` to an ordered JetStream consumer of the
 *   room-events stream in this process receiving the event (outbox → relay → JetStream).
 *
 * Every signature is verified; each event must reach the receiver (duplicates are counted).
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/webhooks-<timestamp>.json. Exit 0; 1 on a failure or failed check;
 * 2 on bad usage; 130 on SIGINT.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type WebSocket from 'ws';
import { DEV_HS256_SECRET, mintToken, uniquePrefix } from '@switchboard/devstack';
import { WebhookHeaders, roomEventStream } from '@switchboard/protocol';
import { verifyWebhook } from '@switchboard/client/webhooks';
import {
  UsageError,
  commandLine,
  log,
  runBench,
  stats,
  writeResults,
  type BenchRun,
  type Stats,
} from './lib/cli.ts';
import { RunServices, apiWsUrl, benchInfra } from './lib/infra.ts';
import { openSocket } from './lib/ws-client.ts';

const cli = commandLine('webhooks', {
  rate: { env: 'BENCH_RATE', def: 20, min: 1, help: 'joins per second' },
  seconds: { env: 'BENCH_SECONDS', def: 10, min: 1, help: 'how long clients keep joining' },
  'room-size': { env: 'BENCH_ROOM_SIZE', def: 4, min: 1, help: 'clients per room' },
  'timeout-ms': { env: 'BENCH_TIMEOUT_MS', def: 60_000, min: 1000, help: 'limit of each phase' },
});

interface Options {
  rate: number;
  seconds: number;
  roomSize: number;
  timeoutMs: number;
}

const KEY_ID = 'bench';
const SECRET = randomBytes(32).toString('hex');

function parseOptions(): Options {
  const flags = cli.parse();
  const opts = {
    rate: flags.num('rate'),
    seconds: flags.num('seconds'),
    roomSize: flags.num('room-size'),
    timeoutMs: flags.num('timeout-ms'),
  };
  if (opts.rate * opts.seconds > 5000) throw new UsageError('at most 5000 joins in a run');
  return opts;
}

async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A client that joins one room and closes. */
async function joinOnce(url: string, roomId: string, token: string): Promise<WebSocket> {
  const ws = await openSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as { id?: unknown; s?: unknown; e?: unknown };
      if (f.id !== 1) return;
      if (f.s === true) resolve();
      else reject(new Error(`join refused: ${JSON.stringify(f).slice(0, 200)}`));
    });
    ws.send(JSON.stringify({ a: 'join', id: 1, d: { roomId, bearer: token, platform: 'bench' } }));
  });
  return ws;
}

interface Seen {
  ts: number;
  at: number;
}

await runBench(cli.usage, async (run: BenchRun) => {
  const opts = parseOptions();
  const startedAt = new Date();
  const { failure, cleanup } = run;

  // The receiver: 200 at once; the body's arrival time per event id.
  const hooks = new Map<string, Seen>();
  let duplicates = 0;
  let badSignatures = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      const raw = Buffer.concat(chunks).toString('utf8');
      res.writeHead(200).end();
      if (!verifyWebhook(raw, req.headers[WebhookHeaders.signature] as string, SECRET)) {
        badSignatures++;
      }
      const body = JSON.parse(raw) as { id: string; createdAt: number };
      if (hooks.has(body.id)) duplicates++;
      else hooks.set(body.id, { ts: body.createdAt, at });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add('close the receiver', async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver not listening');
  const hookUrl = `http://127.0.0.1:${String(address.port)}/hooks`;

  const infra = await benchInfra({ failure, cleanup });
  const prefix = uniquePrefix('benchwh');
  log(`platform: rooms, a gateway and an events service (subjects under "${prefix}.")`);
  const services = new RunServices(run);
  const platform = await services.startPlatform(infra, {
    subjectPrefix: prefix,
    names: ['gateway', 'rooms'],
    env: {
      AUTH_HS256_SECRET: DEV_HS256_SECRET,
      GATEWAY_DEV_TOKENS: 'true',
      WS_MAX_CONNECTIONS_PER_IP: '1000000',
      WS_MAX_UNJOINED_PER_IP: '1000000',
      LOG_LEVEL: 'info',
    },
  });
  const events = await services.start(
    'events',
    {
      ...platform.env,
      API_KEYS: `${KEY_ID}:${SECRET}`,
      WEBHOOK_API_KEY: KEY_ID,
      WEBHOOK_URLS: hookUrl,
    },
    'stop the events service',
  );
  await events.waitReady();
  failure.check();

  // The baseline: an ordered consumer of the stream in this process.
  const nc = await connect({
    servers: infra.natsUrl,
    ...infra.natsCredentials.connectOptions('test'),
  });
  cleanup.add('close the NATS connection', async () => {
    await nc.close();
  });
  const stream = new Map<string, Seen>();
  const js = jetstream(nc);
  // The rooms service creates the stream with its first event: one room first, unmeasured.
  const wsUrl = apiWsUrl(platform.get('gateway'));
  // Until the endpoint's consumer exists (deliver policy `new`), events are not its: warm up
  // with a room at a time until one reaches the receiver (unmeasured).
  const warmUntil = Date.now() + opts.timeoutMs;
  const received = (): number => hooks.size;
  for (let k = 0; received() === 0; k++) {
    if (Date.now() > warmUntil) throw new Error('no webhook arrived while warming up');
    const room = `bench-warm-${String(k)}`;
    const warm = await joinOnce(wsUrl, room, await mintToken({ sub: 'warm', rooms: [room] }));
    warm.close(1000);
    const next = Date.now() + 2000;
    while (received() === 0 && Date.now() < next) await new Promise((r) => setTimeout(r, 50));
  }
  const consumer = await js.consumers.get(roomEventStream(prefix), {
    deliver_policy: DeliverPolicy.New,
  });
  const messages = await consumer.consume({
    callback: (m) => {
      const at = Date.now();
      const e = m.json<{ id: string; ts: number }>();
      stream.set(e.id, { ts: e.ts, at });
    },
  });
  cleanup.add('stop the baseline consumer', async () => {
    await messages.close();
  });
  await new Promise((r) => setTimeout(r, 500));
  hooks.clear();
  duplicates = 0;

  const runId = randomBytes(3).toString('hex');
  const n = opts.rate * opts.seconds;
  log(`load: ${String(n)} joins at ${String(opts.rate)}/s into rooms of ${String(opts.roomSize)}`);
  const roomOf = (i: number): string =>
    `bench-wh-${runId}-${String(Math.floor(i / opts.roomSize))}`;
  const tokens = await Promise.all(
    Array.from(
      { length: n },
      async (_, i) => await mintToken({ sub: `u${String(i)}`, rooms: [roomOf(i)] }),
    ),
  );
  const sockets: WebSocket[] = [];
  const t0 = performance.now();
  await failure.guard(
    'joins',
    opts.timeoutMs + opts.seconds * 1000,
    Promise.all(
      tokens.map(async (token, i) => {
        const wait = t0 + (i * 1000) / opts.rate - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        sockets.push(await joinOnce(wsUrl, roomOf(i), token));
      }),
    ),
  );
  log('load: every client leaves');
  for (const ws of sockets) ws.close(1000);
  const rooms = Math.ceil(n / opts.roomSize);
  const expected = 2 * n + 2 * rooms;
  await failure.guard(
    'every event on the stream',
    opts.timeoutMs,
    until(() => stream.size >= expected, opts.timeoutMs, 'the stream'),
  );
  await failure.guard(
    'every webhook',
    opts.timeoutMs,
    until(() => [...stream.keys()].every((id) => hooks.has(id)), opts.timeoutMs, 'the webhooks'),
  );
  await new Promise((r) => setTimeout(r, 300));

  const hookLag: number[] = [];
  const streamLag: number[] = [];
  const extra: number[] = [];
  for (const [id, s] of stream) {
    const h = hooks.get(id);
    if (h === undefined) continue;
    streamLag.push(s.at - s.ts);
    hookLag.push(h.at - h.ts);
    extra.push(h.at - s.at);
  }
  if (badSignatures > 0) run.anomalies.push(`${String(badSignatures)} webhooks did not verify`);
  if (stream.size !== expected) {
    run.anomalies.push(`${String(stream.size)} events on the stream, ${String(expected)} expected`);
  }
  const result = {
    events: stream.size,
    duplicates,
    webhookLagMs: stats(hookLag),
    streamLagMs: stats(streamLag),
    webhookAfterStreamMs: stats(extra),
  };
  const f = (s: Stats | undefined): string =>
    s === undefined ? '—' : `${String(Math.round(s.p50))} / ${String(Math.round(s.p99))} ms`;
  const text = [
    `webhooks: ${String(n)} joins at ${String(opts.rate)}/s, rooms of ${String(opts.roomSize)}: ${String(stream.size)} events, ${String(duplicates)} duplicates`,
    '',
    '| measure (p50 / p99)                     | webhook                 | baseline: JetStream consumer |',
    '| --------------------------------------- | ----------------------- | ---------------------------- |',
    `| commit (ts) → receipt                   | ${f(result.webhookLagMs).padEnd(23)} | ${f(result.streamLagMs).padEnd(28)} |`,
    `| webhook after the stream consumer       | ${f(result.webhookAfterStreamMs).padEnd(23)} | —                            |`,
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  writeResults('webhooks', startedAt, {
    options: opts,
    ...result,
    failedChecks: run.anomalies,
    text,
  });
  return run.anomalies.length > 0 ? 1 : 0;
});
