/**
 * `./run bench events [-- flags]`: the room events' path, beside what its parts cost alone,
 * measured in the same run.
 *
 * 1. **join → room.join**: N clients join rooms of K through one gateway over the WebSocket
 *    API; a plain NATS subscription on `<p>.room.join` (the stream's subjects also reach core
 *    subscribers) records when each client's room.join arrives (matched by the socketId of
 *    its joinR). Timed from sending `join`. Baseline: the joinR round trip of the same joins.
 *    Then the clients close, and every room.leave is awaited.
 * 2. **room.live**: R rooms of one member each are inserted straight into the platform's
 *    database (as many WebSockets would be too heavy), an events service starts with
 *    ROOM_LIVE_INTERVAL_MS short, and `<p>.room.live` is watched for T whole ticks: from the
 *    first to the last message of a tick, and rooms per second. Baselines: the same
 *    `Rooms.liveRooms` page loop (1000 a page) without publishing — what the rooms service
 *    and PostgreSQL cost — and publishing the same R payloads from this process on a subject
 *    of its own — what NATS costs.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/events-<timestamp>.json. Exit 0 on success; 1 on any failure or
 * failed check (the results are still written when only a check failed); 130 on SIGINT.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import {
  DEV_HS256_SECRET,
  ServiceProcess,
  mintToken,
  postgresBinDir,
  startPlatform,
  uniquePrefix,
  type Infra,
  type Platform,
} from '@switchboard/devstack';
import { Rooms, roomEvent, roomEventSubject, type RoomEvent } from '@switchboard/protocol';
import WebSocket from 'ws';
// The bus is not a dependency of the root package; the tests import services' sources the
// same way.
import { pino } from 'pino';
import { Bus } from '@switchboard/bus';
import { procCpuMs } from './lib/proc-cpu.ts';
import {
  UsageError,
  log,
  numberFlagsUsage,
  parseNumberFlags,
  pool,
  runBench,
  stats,
  writeResults,
  type BenchRun,
  type Failure,
  type Stats,
} from './lib/cli.ts';
import { benchInfra, watchService } from './lib/infra.ts';

// ------------------------------------------------------------------------------- options

const FLAGS = {
  clients: { env: 'BENCH_CLIENTS', def: 200, min: 1, help: 'WebSocket clients that join' },
  'room-size': { env: 'BENCH_ROOM_SIZE', def: 4, min: 1, help: 'clients per room' },
  concurrency: { env: 'BENCH_CONCURRENCY', def: 25, min: 1, help: 'joins in flight at once' },
  rooms: {
    env: 'BENCH_ROOMS',
    def: 10_000,
    min: 1,
    help: 'rooms (one member each) in the room.live snapshot',
  },
  ticks: { env: 'BENCH_TICKS', def: 2, min: 1, help: 'room.live ticks measured' },
  'interval-ms': {
    env: 'BENCH_INTERVAL_MS',
    def: 5000,
    min: 500,
    help: "the events service's ROOM_LIVE_INTERVAL_MS",
  },
  'timeout-ms': { env: 'BENCH_TIMEOUT_MS', def: 60_000, min: 1000, help: 'limit of each phase' },
} as const;
type Flag = keyof typeof FLAGS;

interface Options {
  clients: number;
  roomSize: number;
  concurrency: number;
  rooms: number;
  ticks: number;
  intervalMs: number;
  timeoutMs: number;
}

function usage(): string {
  return numberFlagsUsage('events', FLAGS);
}

function parseOptions(argv: string[]): Options | undefined {
  const num = parseNumberFlags<Flag>(argv, FLAGS);
  if (num === undefined) return undefined;
  const opts: Options = {
    clients: num('clients'),
    roomSize: num('room-size'),
    concurrency: num('concurrency'),
    rooms: num('rooms'),
    ticks: num('ticks'),
    intervalMs: num('interval-ms'),
    timeoutMs: num('timeout-ms'),
  };
  if (opts.rooms > 999_999) throw new UsageError('--rooms must stay below 1000000');
  return opts;
}

// ------------------------------------------------------------------------------- helpers

type BusLog = ConstructorParameters<typeof Bus>[0]['log'];
type Nc = NonNullable<Bus['connection']>;

/** The Bus's log: its warnings and errors, on stderr beside the benchmark's own. */
function busLog(name: string): BusLog {
  return pino({ name, level: 'warn' }, process.stderr);
}

/** Resolves once `done()` holds, checked every 10 ms. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 10));
}

const execFileP = promisify(execFile);

/** Run SQL with psql (the root package has no PostgreSQL client); resolves with its output. */
async function psql(databaseUrl: string, sql: string): Promise<string> {
  const { stdout } = await execFileP(
    join(postgresBinDir(), 'psql'),
    ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', databaseUrl, '-c', sql],
    { maxBuffer: 16 * 2 ** 20 },
  );
  return stdout.trim();
}

function cpuMs(svc: ServiceProcess): number {
  const pid = svc.process.pid;
  return pid === undefined ? NaN : procCpuMs(pid).totalMs;
}

// ------------------------------------------------------------------------------ a client

interface Frame {
  a?: unknown;
  s?: unknown;
  d?: unknown;
  e?: unknown;
  id?: unknown;
}

class Client {
  readonly ws: WebSocket;
  readonly #pending = new Map<number, (f: Frame, at: number) => void>();
  #next = 1;

  constructor(ws: WebSocket, failure: Failure, name: string) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const at = performance.now();
      const f = JSON.parse(data.toString('utf8')) as Frame;
      if (typeof f.id !== 'number') return; // events of the room
      const p = this.#pending.get(f.id);
      this.#pending.delete(f.id);
      p?.(f, at);
    });
    ws.on('close', (code) => {
      if (this.#pending.size > 0 || (code !== 1000 && code !== 1005))
        failure.fail(new Error(`${name}: socket closed by the server (${code})`));
    });
    ws.on('error', (err) => {
      failure.fail(new Error(`${name}: ${err.message}`));
    });
  }

  static async connect(url: string, failure: Failure, name: string): Promise<Client> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        resolve();
      });
      ws.once('error', reject);
    });
    return new Client(ws, failure, name);
  }

  /** Send a request; resolves with the reply, when it was sent and when it came. */
  async request(a: string, d: unknown): Promise<{ reply: Frame; sentAt: number; at: number }> {
    const id = this.#next++;
    return await new Promise((resolve) => {
      this.#pending.set(id, (reply, at) => {
        resolve({ reply, sentAt, at });
      });
      const sentAt = performance.now();
      this.ws.send(JSON.stringify({ a, d, id }));
    });
  }
}

// ---------------------------------------------------------------------- 1. join → room.join

async function joinPhase(opts: Options, p: Setup, failure: Failure, anomalies: string[]) {
  const nc = p.watch.connection as Nc;
  const runId = randomBytes(3).toString('hex');
  const joins = new Map<string, { at: number; body: string; n: number }>();
  const leaves = new Map<string, string>();
  const subJoin = nc.subscribe(roomEventSubject(p.prefix, 'room.join'), {
    callback: (err, msg) => {
      if (err !== null) return;
      const at = performance.now();
      const body = msg.string();
      const id = /"socketId":"([0-9a-f]+)"/.exec(body)?.[1] ?? body;
      const seen = joins.get(id);
      if (seen === undefined) joins.set(id, { at, body, n: 1 });
      else seen.n++;
    },
  });
  const subLeave = nc.subscribe(roomEventSubject(p.prefix, 'room.leave'), {
    callback: (err, msg) => {
      if (err !== null) return;
      const body = msg.string();
      leaves.set(/"socketId":"([0-9a-f]+)"/.exec(body)?.[1] ?? body, body);
    },
  });
  await nc.flush();

  const n = opts.clients;
  const rooms = Math.ceil(n / opts.roomSize);
  log(`join: ${n} clients connect to ${p.wsUrl}`);
  const clients: Client[] = [];
  await failure.guard(
    'connect',
    opts.timeoutMs,
    pool(
      Array.from({ length: n }, (_, i) => i),
      opts.concurrency,
      async (i) => {
        clients[i] = await Client.connect(p.wsUrl, failure, `client ${i}`);
      },
    ),
    () => `${clients.filter(Boolean).length} of ${n}`,
  );
  const roomOf = (i: number): string =>
    `bench-join-${runId}-${String(Math.floor(i / opts.roomSize))}`;
  const tokens = await Promise.all(
    clients.map((_, i) => mintToken({ sub: `user-${i}`, rooms: [roomOf(i)] })),
  );

  log(`join: ${n} joins into ${rooms} rooms of ${opts.roomSize}, ${opts.concurrency} at once`);
  const sent: { socketId: string; sentAt: number; joinRAt: number }[] = [];
  const t0 = performance.now();
  await failure.guard(
    'join',
    opts.timeoutMs,
    pool(
      clients.map((c, i) => ({ c, i })),
      opts.concurrency,
      async ({ c, i }) => {
        const { reply, sentAt, at } = await c.request('join', {
          roomId: roomOf(i),
          bearer: tokens[i],
          platform: 'bench',
        });
        const socketId = (reply.d as { socketId?: unknown } | undefined)?.socketId;
        if (reply.s !== true || typeof socketId !== 'string')
          throw new Error(`join of client ${i}: ${JSON.stringify(reply).slice(0, 300)}`);
        sent[i] = { socketId, sentAt, joinRAt: at };
      },
    ),
    () => `${sent.filter(Boolean).length} of ${n}`,
  );
  const joinSeconds = (performance.now() - t0) / 1000;
  await failure.guard(
    'room.join events',
    opts.timeoutMs,
    until(() => sent.every((s) => joins.has(s.socketId))),
    () => `${sent.filter((s) => joins.has(s.socketId)).length} of ${n}`,
  );
  const lastEventSeconds = (performance.now() - t0) / 1000;
  // Duplicates arriving right after the last one would be missed otherwise.
  await new Promise((r) => setTimeout(r, 200));

  const eventMs: number[] = [];
  const joinRMs: number[] = [];
  const afterJoinRMs: number[] = [];
  sent.forEach((s, i) => {
    const ev = joins.get(s.socketId);
    if (ev === undefined) return;
    eventMs.push(ev.at - s.sentAt);
    joinRMs.push(s.joinRAt - s.sentAt);
    afterJoinRMs.push(ev.at - s.joinRAt);
    if (ev.n !== 1) anomalies.push(`room.join of client ${i} arrived ${ev.n} times`);
    const parsed = roomEvent['room.join'].parse(JSON.parse(ev.body));
    if (!parsed.ok) anomalies.push(`room.join of client ${i} is invalid: ${ev.body.slice(0, 200)}`);
    else if (parsed.value.roomId !== roomOf(i) || parsed.value.userId !== `user-${i}`)
      anomalies.push(
        `room.join of client ${i} names ${parsed.value.roomId}/${parsed.value.userId}`,
      );
  });
  const ours = new Set(sent.map((s) => s.socketId));
  const others = [...joins.keys()].filter((k) => !ours.has(k)).length;
  if (others > 0) anomalies.push(`${others} room.join events of sockets that did not join`);

  log('join: the clients close; waiting for every room.leave');
  for (const c of clients) c.ws.close(1000);
  await failure.guard(
    'room.leave events',
    opts.timeoutMs,
    until(() => sent.every((s) => leaves.has(s.socketId))),
    () => `${sent.filter((s) => leaves.has(s.socketId)).length} of ${n}`,
  );
  subJoin.unsubscribe();
  subLeave.unsubscribe();
  return {
    joinToEventMs: stats(eventMs),
    joinToJoinRMs: stats(joinRMs),
    joinRToEventMs: stats(afterJoinRMs),
    joinsPerSecond: Math.round(n / joinSeconds),
    eventsPerSecond: Math.round(n / lastEventSeconds),
  };
}

// ------------------------------------------------------------------------- 2. room.live

type LivePayload = RoomEvent<'room.live'>;

/** Insert `rooms` rooms of one ACTIVE session each, on a gateway row kept alive a day. */
async function insertRooms(databaseUrl: string, rooms: number): Promise<number> {
  const id = `'bench-live-' || lpad(g::text, 6, '0')`;
  const t0 = performance.now();
  await psql(
    databaseUrl,
    `BEGIN;
     INSERT INTO gateways (id, started_at, last_seen, sockets)
       VALUES ('bench-live-gateway', now(), now() + interval '1 day', ${rooms});
     INSERT INTO rooms (id) SELECT ${id} FROM generate_series(1, ${rooms}) g;
     INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id, state)
       SELECT encode(sha256(convert_to(${id}, 'UTF8')), 'hex'), ${id}, 'bench-user-' || g,
              'bench', 'bench-live-gateway', 'bench-conn-' || g, 'ACTIVE'::session_state
       FROM generate_series(1, ${rooms}) g;
     COMMIT;
     ANALYZE sessions;`,
  );
  return performance.now() - t0;
}

/** The liveRooms page loop of LiveSnapshots.publishAll, without publishing. */
async function pageLoop(bus: Bus) {
  const rooms: LivePayload[] = [];
  const pageMs: number[] = [];
  const t0 = performance.now();
  let after: string | undefined;
  for (;;) {
    const p0 = performance.now();
    const page = await bus.request(Rooms.liveRooms, {
      limit: 1000,
      ...(after === undefined ? {} : { after }),
    });
    pageMs.push(performance.now() - p0);
    const ts = Date.now();
    for (const r of page.rooms) rooms.push({ ts, ...r });
    after = page.rooms.at(-1)?.roomId;
    if (page.rooms.length < 1000 || after === undefined) break;
  }
  return { ms: performance.now() - t0, pages: pageMs.length, pageMs: stats(pageMs), rooms };
}

interface Arrival {
  at: number;
  wall: number;
  body: string;
}

/** Messages on `subject` of `nc`, split into ticks: a roomId seen again starts the next. */
function watchTicks(nc: Nc, subject: string) {
  const ticks: Arrival[][] = [];
  let seen = new Set<string>();
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err !== null) return;
      const at = performance.now();
      const body = msg.string();
      const roomId = /"roomId":"([^"]+)"/.exec(body)?.[1] ?? body;
      if (ticks.length === 0 || seen.has(roomId)) {
        ticks.push([]);
        seen = new Set();
      }
      seen.add(roomId);
      ticks.at(-1)?.push({ at, wall: Date.now(), body });
    },
  });
  return { ticks, sub };
}

function tickFigures(tick: Arrival[]) {
  const first = tick[0];
  const last = tick.at(-1);
  if (first === undefined || last === undefined) return undefined;
  const spanMs = last.at - first.at;
  const firstTs = (JSON.parse(first.body) as { ts: number }).ts;
  return {
    messages: tick.length,
    firstToLastMs: Math.round(spanMs * 10) / 10,
    roomsPerSecond: spanMs > 0 ? Math.round((tick.length - 1) / (spanMs / 1000)) : null,
    /** From the first page's snapshot time (the events service's clock, the same host). */
    firstSnapshotToLastMs: last.wall - firstTs,
    bytesMean: Math.round(tick.reduce((s, a) => s + Buffer.byteLength(a.body), 0) / tick.length),
  };
}

async function livePhase(opts: Options, p: Setup, failure: Failure, anomalies: string[]) {
  log(`live: inserting ${opts.rooms} rooms of one session into the database`);
  const insertMs = await failure.guard(
    'insert',
    opts.timeoutMs,
    insertRooms(p.platform.databaseUrl, opts.rooms),
  );
  const inDb = Number(
    await psql(p.platform.databaseUrl, 'SELECT count(DISTINCT room_id) FROM sessions'),
  );
  if (inDb !== opts.rooms)
    anomalies.push(`${inDb} rooms with sessions in the database, not ${opts.rooms}`);

  // Baseline: the rooms service's part (a first, unmeasured loop warms its caches).
  log('live: baseline: Rooms.liveRooms page loop (once to warm up, once measured)');
  const cold = await failure.guard('liveRooms loop', opts.timeoutMs, pageLoop(p.pub));
  const loop = await failure.guard('liveRooms loop', opts.timeoutMs, pageLoop(p.pub));
  if (loop.rooms.length !== inDb)
    anomalies.push(`the liveRooms loop found ${loop.rooms.length} rooms, not ${inDb}`);
  const expected = loop.rooms.length;

  // Baseline: NATS's part — the same payloads, published from here the way the service does.
  log(`live: baseline: publishing ${expected} equally sized messages from this process`);
  const nc = p.watch.connection as Nc;
  const subject = `${p.prefix}.bench.live`;
  const base = watchTicks(nc, subject);
  await nc.flush();
  // In pages, yielding between them as the service does (it awaits the next page), so the
  // subscriber in this same process is not held off until the last publish.
  const b0 = performance.now();
  let publishLoopMs = 0;
  for (let i = 0; i < loop.rooms.length; i += 1000) {
    const p0 = performance.now();
    const ts = Date.now();
    for (const r of loop.rooms.slice(i, i + 1000)) p.pub.publish(subject, { ...r, ts });
    publishLoopMs += performance.now() - p0;
    await new Promise((r) => setImmediate(r));
  }
  await failure.guard(
    'baseline messages',
    opts.timeoutMs,
    until(() => (base.ticks[0]?.length ?? 0) >= expected),
    () => `${base.ticks[0]?.length ?? 0} of ${expected}`,
  );
  base.sub.unsubscribe();
  const baseTick = base.ticks[0] ?? [];
  const baseLast = baseTick.at(-1);
  const publishToLastMs = baseLast === undefined ? NaN : baseLast.at - b0;
  const nats = {
    /** Time spent in publish() calls (JSON, headers, buffering). */
    publishLoopMs: Math.round(publishLoopMs * 10) / 10,
    /** From the first publish to the last arrival: the figure to set beside a tick. */
    publishToLastMs: Math.round(publishToLastMs * 10) / 10,
    roomsPerSecondToLast: Math.round(expected / (publishToLastMs / 1000)),
    ...tickFigures(baseTick),
  };

  // The platform: an events service publishing every interval.
  const lease = Math.max(100, Math.floor((opts.intervalMs * 3) / 4));
  const live = watchTicks(nc, roomEventSubject(p.prefix, 'room.live'));
  await nc.flush();
  log(`live: starting the events service (ROOM_LIVE_INTERVAL_MS=${opts.intervalMs})`);
  const events = await ServiceProcess.start('events', {
    ...p.platform.env,
    ROOM_LIVE_INTERVAL_MS: String(opts.intervalMs),
    LEADER_LEASE_MS: String(lease),
  });
  p.watchService(events);
  p.cleanup('stop the events service', async () => {
    p.stopping();
    await events.stop();
  });
  await events.waitReady();
  const cpu0 = { events: cpuMs(events), rooms: cpuMs(p.platform.get('rooms')) };
  const complete = (): number => live.ticks.filter((t) => t.length >= expected).length;
  log(`live: waiting for ${opts.ticks} whole room.live ticks of ${expected} rooms`);
  await failure.guard(
    'room.live ticks',
    opts.intervalMs * (opts.ticks + 1) + opts.timeoutMs,
    until(() => complete() >= opts.ticks),
    () =>
      `${complete()} whole ticks; messages per tick: ${live.ticks.map((t) => t.length).join(', ')}`,
  );
  const cpu1 = { events: cpuMs(events), rooms: cpuMs(p.platform.get('rooms')) };
  live.sub.unsubscribe();

  const ticks = live.ticks.slice(0, opts.ticks);
  ticks.forEach((t, i) => {
    if (t.length !== expected)
      anomalies.push(`room.live tick ${i + 1}: ${t.length} messages, not ${expected}`);
  });
  // Validate a tick in full once the timing is over (not in the subscription's callback).
  const ids = new Set(loop.rooms.map((r) => r.roomId));
  for (const a of ticks[0] ?? []) {
    const parsed = roomEvent['room.live'].parse(JSON.parse(a.body));
    if (!parsed.ok) {
      anomalies.push(`invalid room.live: ${a.body.slice(0, 200)}`);
      break;
    }
    if (!ids.has(parsed.value.roomId) || parsed.value.roomSize !== 1) {
      anomalies.push(`unexpected room.live: ${a.body.slice(0, 200)}`);
      break;
    }
  }
  return {
    insertMs: Math.round(insertMs),
    rooms: expected,
    liveRooms: {
      coldMs: Math.round(cold.ms),
      ms: Math.round(loop.ms * 10) / 10,
      pages: loop.pages,
      pageMs: loop.pageMs,
      roomsPerSecond: Math.round(expected / (loop.ms / 1000)),
    },
    nats,
    ticks: ticks.map(tickFigures),
    cpuMsPerTick: {
      events: Math.round((cpu1.events - cpu0.events) / live.ticks.length),
      rooms: Math.round((cpu1.rooms - cpu0.rooms) / live.ticks.length),
      ticksInWindow: live.ticks.length,
    },
  };
}

// ------------------------------------------------------------------------------ platform

interface Setup {
  platform: Platform;
  prefix: string;
  wsUrl: string;
  /** Publishes and calls (like the events service). */
  pub: Bus;
  /** Subscribes (like an analytics consumer), on a connection of its own. */
  watch: Bus;
  watchService(svc: ServiceProcess): void;
  cleanup(what: string, fn: () => Promise<void>): void;
  stopping(): void;
}

async function setup(run: BenchRun): Promise<Setup> {
  const { failure, cleanup } = run;
  let stopping = false;
  const watchProcess = (svc: ServiceProcess): void => {
    watchService(run, svc, () => stopping);
  };
  const infra: Infra = await benchInfra({ failure, cleanup });
  const prefix = uniquePrefix('benchev');
  const bus = (name: string): Bus => {
    const b = new Bus({
      servers: infra.natsUrl,
      auth: infra.natsCredentials.busAuth('test'),
      prefix,
      service: 'gateway',
      instanceId: `bench-events-${name}`,
      log: busLog(`bus (${name})`),
      requestTimeoutMs: 30_000,
    });
    cleanup.add(`close the bus (${name})`, async () => {
      await b.close();
    });
    return b;
  };
  const pub = bus('publisher');
  const watch = bus('subscriber');
  await failure.guard(
    'NATS connection',
    10_000,
    Promise.all([pub.whenConnected(), watch.whenConnected()]),
  );
  log(`platform: starting rooms and a gateway (subjects under "${prefix}.")`);
  const platform = await startPlatform({
    natsUrl: infra.natsUrl,
    subjectPrefix: prefix,
    pgServerUrl: infra.pgServerUrl,
    names: ['gateway', 'rooms'],
    env: {
      AUTH_HS256_SECRET: DEV_HS256_SECRET,
      // The published development secret: a development gateway only. Every simulated client
      // comes from one address: no per-address caps.
      GATEWAY_DEV_TOKENS: 'true',
      WS_MAX_CONNECTIONS_PER_IP: '1000000',
      WS_MAX_UNJOINED_PER_IP: '1000000',
      WS_RATE_LIMIT_PER_S: '100000',
      WS_RATE_LIMIT_BURST: '100000',
      LOG_LEVEL: 'info',
    },
  });
  cleanup.add('stop the platform', async () => {
    stopping = true;
    await platform.stop();
  });
  watchProcess(platform.get('gateway'));
  watchProcess(platform.get('rooms'));
  failure.check();
  return {
    platform,
    prefix,
    wsUrl: `${platform.get('gateway').url.replace(/^http/, 'ws')}/api`,
    pub,
    watch,
    watchService: watchProcess,
    cleanup: (what, fn) => {
      cleanup.add(what, fn);
    },
    stopping: () => {
      stopping = true;
    },
  };
}

// -------------------------------------------------------------------------------- report

type JoinResult = Awaited<ReturnType<typeof joinPhase>>;
type LiveResult = Awaited<ReturnType<typeof livePhase>>;

function fmt(s: Stats | undefined): string {
  if (s === undefined) return '—';
  const f = (x: number): string =>
    x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return `${f(s.p50)} / ${f(s.p99)} / ${f(s.max)}`;
}

function report(opts: Options, j: JoinResult, l: LiveResult): string {
  const na = '—';
  const rows: [string, string, string][] = [
    ['join, ms (p50 / p99 / max)', 'join → room.join', 'join → joinR'],
    ['  latency', fmt(j.joinToEventMs), fmt(j.joinToJoinRMs)],
    ['  room.join after joinR', fmt(j.joinRToEventMs), na],
    ['  per second', `${j.eventsPerSecond} events`, `${j.joinsPerSecond} joins`],
    ['', '', ''],
    [`room.live, ${l.rooms} rooms`, 'events service (tick)', 'liveRooms loop / NATS from here'],
  ];
  l.ticks.forEach((t, i) => {
    if (t === undefined) return;
    rows.push([
      `  tick ${i + 1}: first → last message, ms`,
      `${t.firstToLastMs} (${t.messages} messages)`,
      i === 0 ? `${l.liveRooms.ms} / ${l.nats.publishToLastMs}` : '',
    ]);
    rows.push([
      '    rooms per second',
      String(t.roomsPerSecond ?? na),
      i === 0 ? `${l.liveRooms.roomsPerSecond} / ${l.nats.roomsPerSecondToLast}` : '',
    ]);
    rows.push(['    first snapshot → last message, ms', String(t.firstSnapshotToLastMs), '']);
  });
  rows.push(
    [
      '  liveRooms page, ms (p50 / p99 / max)',
      na,
      `${fmt(l.liveRooms.pageMs)} (${l.liveRooms.pages} pages; cold loop ${l.liveRooms.coldMs} ms)`,
    ],
    [
      '  NATS: in publish() / first → last arrival, ms',
      na,
      `${l.nats.publishLoopMs} / ${l.nats.firstToLastMs ?? na}`,
    ],
    ['  message bytes (mean)', String(l.ticks[0]?.bytesMean ?? na), String(l.nats.bytesMean ?? na)],
    [
      '  CPU per tick, ms: events / rooms',
      `${l.cpuMsPerTick.events} / ${l.cpuMsPerTick.rooms}`,
      '',
    ],
  );
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const line = (r: [string, string, string]): string =>
    `${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`.trimEnd();
  return [
    `events benchmark: ${opts.clients} clients joining rooms of ${opts.roomSize} through one ` +
      `gateway (${opts.concurrency} at once); room.live of ${opts.rooms} rooms of one member ` +
      `(inserted in ${l.insertMs} ms), ROOM_LIVE_INTERVAL_MS ${opts.intervalMs}`,
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`,
    '',
    ...rows.map(line),
    '',
    'join → room.join: from sending join to a core NATS subscriber receiving its room.join',
    '(outbox → JetStream). A tick is timed from its first room.live message to its last, so the',
    "first page's liveRooms call is not in it; 'first snapshot' starts at that page's ts.",
    'The CPU per tick is averaged over the ticks seen while waiting (lease renewals included).',
  ].join('\n');
}

// ------------------------------------------------------------------------------------ main

await runBench(usage, async (run) => {
  const opts = parseOptions(process.argv.slice(2));
  if (opts === undefined) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const startedAt = new Date();
  const p = await setup(run);
  const joinResult = await joinPhase(opts, p, run.failure, run.anomalies);
  const liveResult = await livePhase(opts, p, run.failure, run.anomalies);
  run.failure.check();

  const text = report(opts, joinResult, liveResult);
  process.stdout.write(`\n${text}\n`);
  if (run.anomalies.length > 0) {
    process.stdout.write(`\nFAILED CHECKS (${run.anomalies.length}):\n`);
    for (const a of run.anomalies.slice(0, 20)) process.stdout.write(`  ${a}\n`);
  }
  writeResults('events', startedAt, {
    options: opts,
    join: joinResult,
    live: liveResult,
    failedChecks: run.anomalies,
    text,
  });
  return run.anomalies.length > 0 ? 1 : 0;
});
