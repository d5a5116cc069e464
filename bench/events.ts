/**
 * `./run bench events [-- flags]`: the room events' path, beside what its parts cost alone,
 * measured in the same run.
 *
 * 1. **join → room.join**: N clients join rooms of K through one gateway over the WebSocket
 *    API; a plain NATS subscription on `<p>.room.join` (the stream's subjects also reach core
 *    subscribers) records when each client's room.join arrives (matched by the socketId of
 *    its joinR). Timed from sending `join`. Baseline: the joinR round trip of the same joins.
 *    Then the clients close, and every room.leave is awaited.
 * 2. **room.live**: R rooms of one member each, and one room of B members, are inserted
 *    straight into the platform's database (as many WebSockets would be too heavy), an events
 *    service starts with ROOM_LIVE_INTERVAL_MS short, and `<p>.room.live` is watched for T
 *    whole ticks (a tick's messages share `ts`, when it began reading): each tick from its
 *    `ts` to its last message, and rooms per second; meanwhile the resident memory of the
 *    rooms and events service processes is sampled from /proc. Baselines, the bare parts:
 *    every member read from PostgreSQL by a plain `pg` client in this process (in room and
 *    socketId order, through a cursor, in one read-only transaction) and made into the same
 *    messages — what the database costs — and publishing those messages from this process on
 *    a subject of its own, in batches with a flush after each as the rooms service does —
 *    what NATS costs.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/events-<timestamp>.json. Exit 0 on success; 1 on any failure or
 * failed check (the results are still written when only a check failed); 130 on SIGINT.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import {
  mintToken,
  postgresBinDir,
  uniquePrefix,
  type Infra,
  type Platform,
  type ServiceProcess,
} from '@switchboard/devstack';
import {
  MEMBER_LIST_MAX_BYTES,
  roomEvent,
  roomEventSubject,
  type ServerFrame,
} from '@switchboard/protocol';
import pg from 'pg';
import type WebSocket from 'ws';
// The bus is not a dependency of the root package; the tests import services' sources the
// same way.
import { pino } from 'pino';
import { Bus } from '@switchboard/bus';
import { CpuMeter, pidsNamed, procCpuMs } from './lib/proc-cpu.ts';
import { memoryMiB } from './lib/proc-mem.ts';
import {
  UsageError,
  columns,
  commandLine,
  finishRun,
  log,
  machineLine,
  pool,
  runBench,
  stats,
  type BenchRun,
  type Failure,
  type Stats,
} from './lib/cli.ts';
import { BENCH_GATEWAY_ENV, RunServices, apiWsUrl, benchInfra } from './lib/infra.ts';
import { openSocket } from './lib/ws-client.ts';

// ------------------------------------------------------------------------------- options

const cli = commandLine('events', {
  clients: { env: 'BENCH_CLIENTS', def: 200, min: 1, help: 'WebSocket clients that join' },
  'room-size': { env: 'BENCH_ROOM_SIZE', def: 4, min: 1, help: 'clients per room' },
  concurrency: { env: 'BENCH_CONCURRENCY', def: 25, min: 1, help: 'joins in flight at once' },
  rooms: {
    env: 'BENCH_ROOMS',
    def: 100_000,
    min: 1,
    help: 'rooms (one member each) in the room.live snapshot',
  },
  'big-room': {
    env: 'BENCH_BIG_ROOM',
    def: 10_000,
    min: 0,
    help: 'members of one more room (0: none), too big for one message from ~8,000',
  },
  ticks: { env: 'BENCH_TICKS', def: 3, min: 1, help: 'room.live ticks measured' },
  'interval-ms': {
    env: 'BENCH_INTERVAL_MS',
    def: 5000,
    min: 500,
    help: "the events service's ROOM_LIVE_INTERVAL_MS",
  },
  'timeout-ms': { env: 'BENCH_TIMEOUT_MS', def: 60_000, min: 1000, help: 'limit of each phase' },
});

interface Options {
  clients: number;
  roomSize: number;
  concurrency: number;
  rooms: number;
  bigRoom: number;
  ticks: number;
  intervalMs: number;
  timeoutMs: number;
}

function parseOptions(): Options {
  const flags = cli.parse();
  const opts: Options = {
    clients: flags.num('clients'),
    roomSize: flags.num('room-size'),
    concurrency: flags.num('concurrency'),
    rooms: flags.num('rooms'),
    bigRoom: flags.num('big-room'),
    ticks: flags.num('ticks'),
    intervalMs: flags.num('interval-ms'),
    timeoutMs: flags.num('timeout-ms'),
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

// ------------------------------------------------------------------------------ a client

class Client {
  readonly ws: WebSocket;
  readonly #pending = new Map<number, (f: ServerFrame, at: number) => void>();
  #next = 1;

  constructor(ws: WebSocket, failure: Failure, name: string) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const at = performance.now();
      const f = JSON.parse(data.toString('utf8')) as ServerFrame;
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
    return new Client(await openSocket(url), failure, name);
  }

  /** Send a request; resolves with the reply, when it was sent and when it came. */
  async request(
    a: string,
    d: unknown,
  ): Promise<{ reply: ServerFrame; sentAt: number; at: number }> {
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

/**
 * The socketId of an event's JSON, without parsing it all (the relay publishes the outbox's
 * jsonb as PostgreSQL prints it: `"socketId": "…"`, a space after the colon).
 */
function socketIdIn(body: string): string {
  return /"socketId":\s*"([0-9a-f]+)"/.exec(body)?.[1] ?? body;
}

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
      const id = socketIdIn(body);
      const seen = joins.get(id);
      if (seen === undefined) joins.set(id, { at, body, n: 1 });
      else seen.n++;
    },
  });
  const subLeave = nc.subscribe(roomEventSubject(p.prefix, 'room.leave'), {
    callback: (err, msg) => {
      if (err !== null) return;
      const body = msg.string();
      leaves.set(socketIdIn(body), body);
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

const BIG_ROOM = 'bench-live-big';
/** Rows a FETCH of the bare read takes, and messages a published batch has. */
const LIVE_BATCH = 2000;
/** A room's members' bytes in one message at most (the rooms service's bound). */
const LIVE_PART_BYTES = MEMBER_LIST_MAX_BYTES - 2048;

/**
 * Insert `rooms` rooms of one ACTIVE session each, and one of `big` sessions (if any), on a
 * gateway row kept alive a day.
 */
async function insertRooms(databaseUrl: string, rooms: number, big: number): Promise<number> {
  const id = `'bench-live-' || lpad(g::text, 6, '0')`;
  const t0 = performance.now();
  await psql(
    databaseUrl,
    `BEGIN;
     INSERT INTO gateways (id, started_at, last_seen, sockets)
       VALUES ('bench-live-gateway', now(), now() + interval '1 day', ${rooms + big});
     INSERT INTO rooms (id) SELECT ${id} FROM generate_series(1, ${rooms}) g;
     INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id, state)
       SELECT md5(${id}), ${id}, 'bench-user-' || g,
              'bench', 'bench-live-gateway', 'bench-conn-' || g, 'ACTIVE'::session_state
       FROM generate_series(1, ${rooms}) g;
     ${
       big === 0
         ? ''
         : `INSERT INTO rooms (id) VALUES ('${BIG_ROOM}');
     INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id, state)
       SELECT md5('big-' || g), '${BIG_ROOM}', 'bench-big-user-' || g,
              'bench', 'bench-live-gateway', 'bench-big-conn-' || g, 'ACTIVE'::session_state
       FROM generate_series(1, ${big}) g;`
     }
     COMMIT;
     ANALYZE sessions;`,
  );
  return performance.now() - t0;
}

/**
 * The bare read: every member in (room_id, socket_id) order, through a cursor of a plain pg
 * client in one read-only transaction, LIVE_BATCH rows a FETCH, each room made into its
 * room.live message (JSON.stringify; a room whose members pass LIVE_PART_BYTES in parts) —
 * in batches of LIVE_BATCH messages, kept when `keep`.
 */
async function bareRead(databaseUrl: string, ts: number, keep: boolean) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const batches: string[][] = [];
  let out: string[] = [];
  let rooms = 0;
  let messages = 0;
  const t0 = performance.now();
  let room: { roomId: string; members: { socketId: string; userId: string }[] } | undefined;
  const emit = (m: string): void => {
    messages++;
    if (!keep) return;
    out.push(m);
    if (out.length >= LIVE_BATCH) {
      batches.push(out);
      out = [];
    }
  };
  const close = (): void => {
    if (room === undefined) return;
    rooms++;
    const roomSize = room.members.length;
    const parts: (typeof room.members)[] = [[]];
    let bytes = 0;
    for (const m of room.members) {
      const n = Buffer.byteLength(JSON.stringify(m)) + 1;
      if (bytes + n > LIVE_PART_BYTES && (parts.at(-1)?.length ?? 0) > 0) {
        parts.push([]);
        bytes = 0;
      }
      parts.at(-1)?.push(m);
      bytes += n;
    }
    if (parts.length === 1)
      emit(JSON.stringify({ ts, roomId: room.roomId, roomSize, sessions: room.members }));
    else
      for (const [i, sessions] of parts.entries())
        emit(
          JSON.stringify({
            ts,
            roomId: room.roomId,
            roomSize,
            sessions,
            part: i + 1,
            more: i < parts.length - 1,
          }),
        );
  };
  try {
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await db.query(`DECLARE bench_live NO SCROLL CURSOR FOR
      SELECT room_id, socket_id, user_id FROM sessions ORDER BY room_id, socket_id`);
    for (;;) {
      const { rows } = await db.query<{ room_id: string; socket_id: string; user_id: string }>(
        `FETCH ${String(LIVE_BATCH)} FROM bench_live`,
      );
      if (rows.length === 0) break;
      for (const r of rows) {
        if (room?.roomId !== r.room_id) {
          close();
          room = { roomId: r.room_id, members: [] };
        }
        room.members.push({ socketId: r.socket_id, userId: r.user_id });
      }
    }
    close();
    await db.query('COMMIT');
  } finally {
    await db.end();
  }
  if (out.length > 0) batches.push(out);
  return { ms: performance.now() - t0, rooms, messages, batches };
}

interface Arrival {
  at: number;
  wall: number;
  bytes: number;
}

/**
 * A room.live message's `ts`: read from its first bytes, `{"ts":<digits>,` as the events
 * service writes them (and the baseline, which copies its messages), without decoding the
 * whole of it — this subscriber shares the machine with what it measures.
 */
function tsOf(data: Uint8Array): number {
  const head = '{"ts":';
  for (let i = 0; i < head.length; i++)
    if (data[i] !== head.charCodeAt(i))
      return Number(/"ts":(\d+)/.exec(Buffer.from(data).toString())?.[1]);
  let ts = 0;
  for (let i = head.length; i < data.length; i++) {
    const d = (data[i] ?? 0) - 48;
    if (d < 0 || d > 9) break;
    ts = ts * 10 + d;
  }
  return ts;
}

/** Busy and total CPU time of the whole machine so far, in clock ticks (/proc/stat). */
function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Messages on `subject` of `nc`, as ticks: the messages of one tick share `ts`. */
function watchTicks(nc: Nc, subject: string) {
  const ticks = new Map<number, Arrival[]>();
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err !== null) return;
      const at = performance.now();
      const ts = tsOf(msg.data);
      let tick = ticks.get(ts);
      if (tick === undefined) ticks.set(ts, (tick = []));
      tick.push({ at, wall: Date.now(), bytes: msg.data.length });
    },
  });
  return { ticks, sub };
}

function tickFigures(ts: number, tick: readonly Arrival[], rooms: number) {
  const first = tick[0];
  const last = tick.at(-1);
  if (first === undefined || last === undefined) return undefined;
  const spanMs = last.at - first.at;
  /** From the tick's start (`ts`, the events service's clock, the same host). */
  const tickMs = last.wall - ts;
  return {
    messages: tick.length,
    tickMs,
    roomsPerSecond: Math.round(rooms / (tickMs / 1000)),
    firstToLastMs: Math.round(spanMs * 10) / 10,
    bytesMean: Math.round(tick.reduce((s, a) => s + a.bytes, 0) / tick.length),
    bytesMax: tick.reduce((m, a) => Math.max(m, a.bytes), 0),
  };
}

interface Sample {
  wall: number;
  /** CPU ms of each process so far, and its VmRSS (MiB). */
  cpu: Record<string, number>;
  rss: Record<string, number>;
  machine: { busy: number; total: number };
}

/**
 * Every `everyMs` until `stop()`: the largest VmRSS of each process, and CPU samples (each
 * process's, the machine's) to tell what the ticks cost while they ran.
 */
function sampleProcesses(pids: Record<string, number | undefined>, everyMs: number) {
  const peak: Record<string, number> = {};
  const samples: Sample[] = [];
  const sample = (): void => {
    const cpu: Record<string, number> = {};
    const rss: Record<string, number> = {};
    for (const [name, pid] of Object.entries(pids)) {
      rss[name] = memoryMiB(pid).rss;
      peak[name] = Math.max(peak[name] ?? 0, rss[name]);
      cpu[name] = pid === undefined ? NaN : procCpuMs(pid).totalMs;
    }
    samples.push({ wall: Date.now(), cpu, rss, machine: machineCpu() });
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { peak, samples };
    },
  };
}

/**
 * From `from` to `to` (wall ms), between the samples that enclose the span: CPU ms of each
 * process, how busy the machine's cores were (percent, everything on it), and each
 * process's largest RSS.
 */
function cpuDuring(samples: readonly Sample[], from: number, to: number) {
  const a = samples.findLast((x) => x.wall <= from) ?? samples[0];
  const b = samples.find((x) => x.wall >= to) ?? samples.at(-1);
  if (a === undefined || b === undefined) return undefined;
  const peakRssMiB: Record<string, number> = {};
  for (const x of samples.slice(samples.indexOf(a), samples.indexOf(b) + 1))
    for (const [k, v] of Object.entries(x.rss)) peakRssMiB[k] = Math.max(peakRssMiB[k] ?? 0, v);
  const cpu: Record<string, number> = Object.fromEntries(
    Object.entries(b.cpu).map(([k, v]) => [k, Math.round(v - (a.cpu[k] ?? NaN))]),
  );
  const total = b.machine.total - a.machine.total;
  return {
    cpuMs: cpu,
    peakRssMiB,
    machineBusyPercent: Math.round((100 * (b.machine.busy - a.machine.busy)) / Math.max(1, total)),
  };
}

/**
 * When the events service's member presence stopped applying events (its counter, from
 * /metrics, unchanged for a second and not zero): epoch ms.
 */
async function presenceSettled(events: ServiceProcess): Promise<number> {
  const applied = async (): Promise<number> =>
    Number(
      /^sb_events_member_presence_applied(?:\{[^}]*\})? (\d+)/m.exec(await events.metrics())?.[1] ??
        0,
    );
  let last = -1;
  for (;;) {
    const now = await applied();
    if (now > 0 && now === last) return Date.now();
    last = now;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function livePhase(opts: Options, p: Setup, failure: Failure, anomalies: string[]) {
  log(
    `live: inserting ${opts.rooms} rooms of one session` +
      (opts.bigRoom > 0 ? ` and one of ${opts.bigRoom}` : '') +
      ' into the database',
  );
  const insertMs = await failure.guard(
    'insert',
    opts.timeoutMs,
    insertRooms(p.platform.databaseUrl, opts.rooms, opts.bigRoom),
  );
  const totalRooms = opts.rooms + (opts.bigRoom > 0 ? 1 : 0);
  const inDb = Number(
    await psql(p.platform.databaseUrl, 'SELECT count(DISTINCT room_id) FROM sessions'),
  );
  if (inDb !== totalRooms)
    anomalies.push(`${inDb} rooms with sessions in the database, not ${totalRooms}`);

  const rooms = p.platform.get('rooms');
  const memIdle = { rooms: memoryMiB(rooms.process.pid).rss };

  // Baseline: the database's part, bare (a first, unmeasured read warms its caches).
  log('live: baseline: the membership read bare with pg (once to warm up, once measured)');
  const db = p.platform.databaseUrl;
  const cold = await failure.guard('bare read', opts.timeoutMs, bareRead(db, 0, false));
  const baseTs = Date.now();
  const loop = await failure.guard('bare read', opts.timeoutMs, bareRead(db, baseTs, true));
  if (loop.rooms !== inDb) anomalies.push(`the bare read found ${loop.rooms} rooms, not ${inDb}`);
  const expected = loop.messages;

  // Baseline: NATS's part — the same messages, published from here the way the rooms service
  // does: no headers, a batch encoded at once, then a flush.
  log(`live: baseline: publishing the same ${expected} messages from this process`);
  const nc = p.watch.connection as Nc;
  const pubNc = p.pub.connection as Nc;
  const subject = `${p.prefix}.bench.live`;
  const base = watchTicks(nc, subject);
  await nc.flush();
  const b0 = performance.now();
  let publishLoopMs = 0;
  for (const batch of loop.batches) {
    const p0 = performance.now();
    const bytes = Buffer.from(batch.join(''), 'utf8');
    let at = 0;
    for (const m of batch) {
      const n = Buffer.byteLength(m, 'utf8');
      pubNc.publish(subject, bytes.subarray(at, at + n));
      at += n;
    }
    publishLoopMs += performance.now() - p0;
    await pubNc.flush();
  }
  const baseTick = (): Arrival[] => base.ticks.get(baseTs) ?? [];
  await failure.guard(
    'baseline messages',
    opts.timeoutMs,
    until(() => baseTick().length >= expected),
    () => `${baseTick().length} of ${expected}`,
  );
  base.sub.unsubscribe();
  const baseLast = baseTick().at(-1);
  const publishToLastMs = baseLast === undefined ? NaN : baseLast.at - b0;
  const nats = {
    /** Time spent publishing (JSON, encoding, buffering), flushes not included. */
    publishLoopMs: Math.round(publishLoopMs * 10) / 10,
    /** From the first publish to the last arrival: the figure to set beside a tick. */
    publishToLastMs: Math.round(publishToLastMs * 10) / 10,
    roomsPerSecondToLast: Math.round(loop.rooms / (publishToLastMs / 1000)),
    ...tickFigures(baseTs, baseTick(), loop.rooms),
  };
  loop.batches.length = 0;

  // The platform: an events service publishing every interval.
  const lease = Math.max(100, Math.floor((opts.intervalMs * 3) / 4));
  const live = watchTicks(nc, roomEventSubject(p.prefix, 'room.live'));
  await nc.flush();
  log(`live: starting the events service (ROOM_LIVE_INTERVAL_MS=${opts.intervalMs})`);
  const events = await p.services.start(
    'events',
    {
      ...p.platform.env,
      ROOM_LIVE_INTERVAL_MS: String(opts.intervalMs),
      LEADER_LEASE_MS: String(lease),
    },
    'stop the events service',
  );
  await events.waitReady();
  // The events service first applies the join phase's events to member presence (its own
  // durable consumer; some KV requests each): done before the measured ticks, so that they
  // do not share the cores with it.
  const settledAt = await failure.guard(
    'member presence',
    opts.timeoutMs,
    presenceSettled(events),
    () => 'member presence still applying events',
  );
  const memReady = {
    events: memoryMiB(events.process.pid).rss,
    rooms: memoryMiB(rooms.process.pid).rss,
  };
  const sampler = sampleProcesses({ events: events.process.pid, rooms: rooms.process.pid }, 20);
  // Every process of the tick's path, over the whole window of the ticks (idle between them;
  // PostgreSQL and NATS are found by name: anything else of theirs on the machine counts too).
  const meter = new CpuMeter({
    events: () => (events.process.pid === undefined ? [] : [events.process.pid]),
    rooms: () => (rooms.process.pid === undefined ? [] : [rooms.process.pid]),
    postgres: () => pidsNamed('postgres'),
    nats: () => pidsNamed('nats-server'),
  }).start();
  // Whole ticks: the ones that began after member presence settled and have them all.
  const whole = (): [number, Arrival[]][] =>
    [...live.ticks]
      .filter(([ts, t]) => ts >= settledAt && t.length >= expected)
      .slice(0, opts.ticks);
  log(`live: waiting for ${opts.ticks} whole room.live ticks of ${expected} messages`);
  await failure.guard(
    'room.live ticks',
    opts.intervalMs * (opts.ticks + 1) + opts.timeoutMs,
    until(() => whole().length >= opts.ticks),
    () =>
      `${whole().length} whole ticks; messages per tick: ${[...live.ticks.values()].map((t) => t.length).join(', ')}`,
  );
  const { peak, samples } = sampler.stop();
  const windowCpu = meter();
  const hwm = {
    events: memoryMiB(events.process.pid).hwm,
    rooms: memoryMiB(rooms.process.pid).hwm,
  };
  live.sub.unsubscribe();

  const ticks = whole();
  for (const [i, [, t]] of ticks.entries()) {
    if (t.length !== expected)
      anomalies.push(`room.live tick ${i + 1}: ${t.length} messages, not ${expected}`);
    const over = t.filter((a) => a.bytes > MEMBER_LIST_MAX_BYTES).length;
    if (over > 0) anomalies.push(`room.live tick ${i + 1}: ${over} messages over the budget`);
  }
  const figures = ticks.map(([ts, t]) => tickFigures(ts, t, loop.rooms));
  const cpuPerTick = ticks.map(([ts, t]) => cpuDuring(samples, ts, t.at(-1)?.wall ?? ts));
  const tickMs = figures.flatMap((f) => (f === undefined ? [] : [f.tickMs]));
  return {
    insertMs: Math.round(insertMs),
    rooms: loop.rooms,
    bigRoom: opts.bigRoom,
    messages: expected,
    /** The bare read (pg in this process, messages made), the second of two. */
    bareRead: {
      coldMs: Math.round(cold.ms),
      ms: Math.round(loop.ms * 10) / 10,
      roomsPerSecond: Math.round(loop.rooms / (loop.ms / 1000)),
    },
    nats,
    ticks: figures,
    tickMs: stats(tickMs),
    roomsPerSecond: stats(figures.flatMap((f) => (f === undefined ? [] : [f.roomsPerSecond]))),
    /** CPU while each whole tick ran, from its `ts` to its last message. */
    cpuPerTick,
    /** CPU ms per tick of each process on the path: the ticks' whole window ÷ the ticks. */
    cpuPerTickAll: Object.fromEntries(
      Object.entries(windowCpu).map(([k, v]) => [k, Math.round(v / Math.max(1, opts.ticks))]),
    ),
    /** Resident memory, MiB: before, and the most sampled (every 20 ms) during the ticks. */
    memoryMiB: {
      roomsIdle: memIdle.rooms,
      ready: memReady,
      peakDuringTicks: peak,
      /** VmHWM at the end: the most since each process started (its start included). */
      highWaterMark: hwm,
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
  /** The run's services: the platform's, and those a phase starts. */
  services: RunServices;
}

async function setup(run: BenchRun): Promise<Setup> {
  const { failure, cleanup } = run;
  const services = new RunServices(run);
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
  const platform = await services.startPlatform(infra, {
    subjectPrefix: prefix,
    names: ['gateway', 'rooms'],
    env: { ...BENCH_GATEWAY_ENV, LOG_LEVEL: 'info' },
  });
  return {
    platform,
    prefix,
    wsUrl: apiWsUrl(platform.get('gateway')),
    pub,
    watch,
    services,
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
    [
      `room.live, ${l.rooms} rooms (${l.messages} messages)`,
      'platform (tick)',
      'bare read with pg / NATS from here',
    ],
    [
      '  tick, ms (p50 / max): start → last message',
      l.tickMs === undefined ? na : `${l.tickMs.p50} / ${l.tickMs.max} (${l.tickMs.n} ticks)`,
      `${l.bareRead.ms} / ${l.nats.publishToLastMs}`,
    ],
    [
      '  rooms per second (p50 / min)',
      l.roomsPerSecond === undefined ? na : `${l.roomsPerSecond.p50} / ${l.roomsPerSecond.min}`,
      `${l.bareRead.roomsPerSecond} / ${l.nats.roomsPerSecondToLast}`,
    ],
    [
      '  each tick: start → last / first → last message, ms',
      l.ticks.map((t) => (t === undefined ? na : `${t.tickMs}/${t.firstToLastMs}`)).join(', '),
      '',
    ],
    ['  bare read, cold (first of two), ms', na, `${l.bareRead.coldMs}`],
    [
      '  NATS: in publish() / first → last arrival, ms',
      na,
      `${l.nats.publishLoopMs} / ${l.nats.firstToLastMs ?? na}`,
    ],
    [
      '  message bytes (mean / max)',
      `${l.ticks[0]?.bytesMean ?? na} / ${l.ticks[0]?.bytesMax ?? na}`,
      `${l.nats.bytesMean ?? na} / ${l.nats.bytesMax ?? na}`,
    ],
    [
      '  CPU in each tick, ms: events / rooms; all cores busy',
      l.cpuPerTick
        .map((c) =>
          c === undefined
            ? na
            : `${c.cpuMs['events'] ?? na}/${c.cpuMs['rooms'] ?? na}; ${c.machineBusyPercent}%`,
        )
        .join(', '),
      '',
    ],
    [
      '  CPU per tick, ms (window of the ticks ÷ ticks)',
      Object.entries(l.cpuPerTickAll)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', '),
      '',
    ],
    [
      '  RSS in each tick, MiB (peak): events / rooms',
      l.cpuPerTick
        .map((c) =>
          c === undefined ? na : `${c.peakRssMiB['events'] ?? na}/${c.peakRssMiB['rooms'] ?? na}`,
        )
        .join(', '),
      '',
    ],
    [
      '  RSS, MiB: events / rooms, ready → peak in ticks',
      `${l.memoryMiB.ready.events} → ${l.memoryMiB.peakDuringTicks['events'] ?? na} / ` +
        `${l.memoryMiB.ready.rooms} → ${l.memoryMiB.peakDuringTicks['rooms'] ?? na}`,
      '',
    ],
  ];
  return [
    `events benchmark: ${opts.clients} clients joining rooms of ${opts.roomSize} through one ` +
      `gateway (${opts.concurrency} at once); room.live of ${opts.rooms} rooms of one member` +
      (opts.bigRoom > 0 ? ` and one of ${opts.bigRoom}` : '') +
      ` (inserted in ${l.insertMs} ms), ROOM_LIVE_INTERVAL_MS ${opts.intervalMs}`,
    machineLine(),
    '',
    ...columns(rows),
    '',
    'join → room.join: from sending join to a core NATS subscriber receiving its room.join',
    "(outbox → JetStream). A room.live tick is timed from its `ts` (the events leader's clock",
    'as it asks the rooms service for the tick) to its last message here; rooms per second from',
    'that. Bare read: every member read by a plain pg client here (cursor, one transaction) and',
    'made into the same messages. The NATS baseline publishes those messages in batches of',
    '2000, no headers, a flush after each. CPU and RSS are sampled from /proc every 20 ms during',
    'the ticks; "all cores busy" counts every process on the machine.',
  ].join('\n');
}

// ------------------------------------------------------------------------------------ main

await runBench(cli.usage, async (run) => {
  const opts = parseOptions();
  const startedAt = new Date();
  const p = await setup(run);
  const joinResult = await joinPhase(opts, p, run.failure, run.anomalies);
  const liveResult = await livePhase(opts, p, run.failure, run.anomalies);
  run.failure.check();

  const text = report(opts, joinResult, liveResult);
  return finishRun(
    'events',
    startedAt,
    { text, anomalies: run.anomalies },
    { options: opts, join: joinResult, live: liveResult },
  );
});
