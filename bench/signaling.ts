/**
 * `./run bench signaling [-- flags]`: the gateway's WebSocket signaling under load, beside a
 * bare fastify WebSocket echo server measured in the same run as the baseline.
 *
 * Platform: NATS and PostgreSQL (found or started), the rooms service and one or two
 * gateways (half the clients on each, so relays also cross gateways). N clients connect,
 * join rooms of K (C joins in flight at once), each relays M ICE candidates round-robin to
 * the other members of its room (W in flight per client), then they leave (one per room
 * first, timed until its peers see eventLeave; then the rest at once).
 * Baseline: the same N clients, the same frames, against `bench/lib/ws-echo-server.ts`.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/signaling-<timestamp>.json. Exit 0 on success; 1 on any failure or
 * failed check (the results are still written when only a check failed); 130 on SIGINT.
 * `--help` lists the flags (each also read from an environment variable).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  DEV_HS256_SECRET,
  ManagedProcess,
  NODE,
  ROOT,
  mintToken,
  type ServiceProcess,
} from '@switchboard/devstack';
import { JoinReply, formatIssues, validator } from '@switchboard/protocol';
import type { Failure } from './lib/cli.ts';
import {
  Cleanup,
  UsageError,
  columns,
  commandLine,
  cpuText,
  finishRun,
  fmt,
  log,
  machineLine,
  perUnit,
  runBench,
  stats,
  pool,
} from './lib/cli.ts';
import { CpuMeter, pidsNamed } from './lib/proc-cpu.ts';
import type { RssResult } from './lib/proc-mem.ts';
import {
  runJoinTx,
  startSignalingPlatform,
  sumMetric,
  type SignalingPlatform,
} from './lib/signaling-platform.ts';
import {
  clientLoad,
  closeAll,
  connectAll,
  describeReply,
  otherEvents,
  type Conn,
  type Frame,
} from './lib/ws-client.ts';

// ------------------------------------------------------------------------------- options

interface Options {
  clients: number;
  roomSize: number;
  relays: number;
  warmup: number;
  joinWarmup: number;
  window: number;
  concurrency: number;
  gateways: number;
  /** Rooms service replicas (one queue group). */
  rooms: number;
  timeoutMs: number;
  /** Relay rounds: the echo baseline and the platform take turns, M relays per client each. */
  rounds: number;
  /** Gateways already running (their /api URLs); none: start a platform here. */
  urls: string[];
  platform: boolean;
  baseline: boolean;
}

const cli = commandLine('signaling', {
  clients: { env: 'BENCH_CLIENTS', def: 200, min: 1, help: 'WebSocket clients' },
  'room-size': { env: 'BENCH_ROOM_SIZE', def: 4, min: 2, help: 'clients per room' },
  relays: { env: 'BENCH_RELAYS', def: 50, min: 1, help: 'measured relays sent by each client' },
  warmup: {
    env: 'BENCH_WARMUP',
    // A round's worth: with 5, the platform's first round ran 30% under its later ones (V8
    // still optimizing), the echo's did not.
    def: 50,
    min: 0,
    help: 'unmeasured relays (echoes) per client before the measured ones, on each side',
  },
  'join-warmup': {
    env: 'BENCH_JOIN_WARMUP',
    def: 100,
    min: 0,
    help: 'unmeasured joins (and leaves) before the measured ones, on both sides',
  },
  window: { env: 'BENCH_WINDOW', def: 1, min: 1, help: 'relays in flight per client' },
  rounds: {
    env: 'BENCH_ROUNDS',
    def: 3,
    min: 1,
    help: 'relay rounds, the baseline and the platform taking turns (the median ratio counts)',
  },
  concurrency: {
    env: 'BENCH_CONCURRENCY',
    def: 25,
    min: 1,
    help: 'connects and joins in flight at once',
  },
  gateways: { env: 'BENCH_GATEWAYS', def: 2, min: 1, help: 'gateways, 1 or 2' },
  rooms: { env: 'BENCH_ROOMS', def: 1, min: 1, help: 'rooms service replicas' },
  'timeout-ms': {
    env: 'BENCH_TIMEOUT_MS',
    def: 60_000,
    min: 1000,
    help: 'limit of each phase and of each join',
  },
  url: {
    type: 'string',
    env: 'BENCH_URL',
    help:
      'ws://host:port/api of running gateways, comma-separated, instead of\n' +
      'starting a platform here; tokens signed with AUTH_HS256_SECRET, by\n' +
      'default the development secret',
  },
  'baseline-only': {
    type: 'boolean',
    env: 'BENCH_BASELINE_ONLY',
    help: 'only the fastify echo baseline',
  },
  'platform-only': { type: 'boolean', env: 'BENCH_PLATFORM_ONLY', help: 'only the platform' },
});

function parseOptions(): Options {
  const flags = cli.parse();
  const baselineOnly = flags.on('baseline-only');
  const platformOnly = flags.on('platform-only');
  if (baselineOnly && platformOnly)
    throw new UsageError('--baseline-only and --platform-only exclude each other');
  const urls = (flags.str('url') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  for (const u of urls)
    if (!/^wss?:\/\/[^/]+\/\S*$/.test(u))
      throw new UsageError(`--url: not a ws:// or wss:// URL with a path: ${u}`);
  const opts: Options = {
    clients: flags.num('clients'),
    roomSize: flags.num('room-size'),
    relays: flags.num('relays'),
    warmup: flags.num('warmup'),
    joinWarmup: flags.num('join-warmup'),
    window: flags.num('window'),
    concurrency: flags.num('concurrency'),
    gateways: flags.num('gateways'),
    rooms: flags.num('rooms'),
    timeoutMs: flags.num('timeout-ms'),
    rounds: flags.num('rounds'),
    urls,
    platform: !baselineOnly,
    baseline: !platformOnly,
  };
  if (opts.gateways > 2) throw new UsageError('--gateways must be 1 or 2');
  // Messages are tagged with 6-digit sender and sequence numbers.
  if (opts.clients > 999_999 || opts.relays + opts.warmup > 999_999)
    throw new UsageError('--clients and --relays (with --warmup) must stay below 1000000');
  if (urls.length > 0) opts.gateways = urls.length;
  if (opts.clients % opts.roomSize !== 0)
    throw new UsageError(
      `--clients (${opts.clients}) must be a multiple of --room-size (${opts.roomSize})`,
    );
  return opts;
}

/** A relay's candidate: the same size for every message; sdpMid says who sent which one. */
const CANDIDATE = 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host';
function tag(sender: number, seq: number): string {
  return `${String(sender).padStart(6, '0')}.${String(seq).padStart(6, '0')}`;
}
function untag(mid: unknown): { sender: number; seq: number } | undefined {
  if (typeof mid !== 'string') return undefined;
  const m = /^(\d{6})\.(\d{6})$/.exec(mid);
  if (m === null) return undefined;
  return { sender: Number(m[1]), seq: Number(m[2]) };
}
function relayData(to: string, sender: number, seq: number): unknown {
  return { to, candidate: { candidate: CANDIDATE, sdpMid: tag(sender, seq), sdpMLineIndex: 0 } };
}

interface RoundResult {
  /** Send → the target's receipt (platform) or → the echo (baseline), ms. */
  delivery: number[];
  /** Platform only: the delivery latencies of peers on the same / the other gateway. */
  sameGateway: number[];
  crossGateway: number[];
  /** Send → exchangeCandidateR (platform) or → echo (baseline), ms. */
  reply: number[];
  messages: number;
  seconds: number;
  perSecond: number;
  client: { cpuPercent: number; loopBusyPercent: number };
}

/**
 * Every client sends `m` messages, `window` in flight: to the other members of its room in
 * turn (`peersOf`), or, without peers, to the echo server (which sends each one back).
 */
async function round(
  label: string,
  conns: readonly Conn[],
  peersOf: ((c: Conn) => readonly Conn[]) | undefined,
  m: number,
  opts: Options,
  failure: Failure,
  anomalies: string[],
): Promise<RoundResult> {
  const total = conns.length * m;
  const res: RoundResult = {
    delivery: [],
    sameGateway: [],
    crossGateway: [],
    reply: [],
    messages: total,
    seconds: 0,
    perSecond: 0,
    client: { cpuPercent: 0, loopBusyPercent: 0 },
  };
  if (m === 0) return res;
  const sentAt = conns.map(() => new Float64Array(m));
  const seen = conns.map(() => new Uint8Array(m));
  let delivered = 0;
  let replied = 0;
  let finish: (() => void) | undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let lastAt = 0;
  const check = (at: number): void => {
    lastAt = Math.max(lastAt, at);
    if (delivered === total && replied === total) finish?.();
  };
  const fakeTo = '0'.repeat(32);

  const deliver = (target: Conn, d: unknown, at: number): void => {
    const data = d as { from?: { socketId?: unknown; userId?: unknown }; candidate?: unknown };
    const cand = data.candidate as { sdpMid?: unknown } | undefined;
    const t = untag(cand?.sdpMid);
    const sender = t === undefined ? undefined : conns[t.sender];
    if (t === undefined || sender === undefined || t.seq >= m) {
      anomalies.push(`${label}: a candidate nobody sent: ${JSON.stringify(d).slice(0, 200)}`);
      return;
    }
    const seenOf = seen[t.sender] as Uint8Array;
    if (seenOf[t.seq] === 1) {
      anomalies.push(`${label}: message ${tag(t.sender, t.seq)} delivered twice`);
      return;
    }
    seenOf[t.seq] = 1;
    if (peersOf !== undefined) {
      const peers = peersOf(sender);
      if (peers[t.seq % peers.length] !== target)
        anomalies.push(`${label}: message ${tag(t.sender, t.seq)} reached client ${target.index}`);
      if (data.from?.socketId !== sender.socketId || data.from.userId !== sender.userId)
        anomalies.push(
          `${label}: message ${tag(t.sender, t.seq)} has from ${JSON.stringify(data.from)}`,
        );
    }
    const lat = at - ((sentAt[t.sender] as Float64Array)[t.seq] ?? NaN);
    res.delivery.push(lat);
    if (peersOf !== undefined)
      (target.url === sender.url ? res.sameGateway : res.crossGateway).push(lat);
    delivered++;
  };

  for (const c of conns) {
    c.onEvent = (target, frame, at) => {
      if (frame.a === 'eventExchangeCandidate') {
        deliver(target, frame.d, at);
        check(at);
      } else {
        target.countEvent(frame);
      }
    };
  }

  const load = clientLoad();
  const t0 = performance.now();
  for (const c of conns) {
    let next = 0;
    const times = sentAt[c.index] as Float64Array;
    const peers = peersOf?.(c) ?? [];
    const sendOne = (): void => {
      const seq = next++;
      const to = peers[seq % Math.max(1, peers.length)]?.socketId ?? fakeTo;
      const t = c.send(
        failure,
        'exchangeCandidate',
        relayData(to, c.index, seq),
        (frame: Frame, at) => {
          res.reply.push(at - t);
          replied++;
          if (peersOf === undefined) {
            // The echo is the request itself.
            deliver(c, frame.d, at);
          } else if (frame.a !== 'exchangeCandidateR' || frame.s !== true) {
            failure.fail(
              new Error(`${label}: client ${c.index}: exchangeCandidate: ${describeReply(frame)}`),
            );
            return;
          }
          check(at);
          if (next < m) sendOne();
        },
      );
      times[seq] = t;
    };
    for (let k = 0; k < Math.min(opts.window, m); k++) sendOne();
  }
  await failure.guard(
    label,
    opts.timeoutMs,
    done,
    () => `${delivered}/${total} delivered, ${replied}/${total} replies`,
  );
  res.client = load();
  for (const c of conns) c.onEvent = undefined;
  res.seconds = (lastAt - t0) / 1000;
  res.perSecond = Math.round(total / res.seconds);
  return res;
}

function summarize(r: RoundResult) {
  return {
    messages: r.messages,
    seconds: Math.round(r.seconds * 1000) / 1000,
    perSecond: r.perSecond,
    deliveryMs: stats(r.delivery),
    sameGatewayMs: stats(r.sameGateway),
    crossGatewayMs: stats(r.crossGateway),
    replyMs: stats(r.reply),
    client: r.client,
  };
}

// ------------------------------------------------------------------------------ baseline

/**
 * A baseline's server, `bench/lib/<script>.ts` as a child process, once it listens (it prints
 * `{"msg":"listening","port":…}`); stopped (SIGTERM, exit 0 expected) by `cleanup`, and an
 * exit before that fails the run. Returns it and its `/api` URL.
 */
async function startChildServer(
  script: string,
  args: readonly string[],
  failure: Failure,
  cleanup: Cleanup,
  name = script,
): Promise<{ server: ManagedProcess; url: string }> {
  const server = new ManagedProcess(
    name,
    NODE,
    [fileURLToPath(new URL(`lib/${script}.ts`, import.meta.url)), ...args],
    { cwd: ROOT },
  );
  let stopping = false;
  cleanup.add(`stop ${name}`, async () => {
    stopping = true;
    const exit = await server.stop('SIGTERM', 10_000);
    if (exit.code !== 0) throw new Error(`exit ${exit.code} ${exit.signal}:\n${server.output()}`);
  });
  const line = await server.waitForLine(/"msg":"listening"/, 30_000);
  failure.check();
  const port = (JSON.parse(line) as { port?: unknown }).port;
  if (typeof port !== 'number') throw new Error(`${name}: no port in ${line}`);
  void server.exited.then(({ code, signal }) => {
    if (!stopping) failure.fail(new Error(`${name} exited (code ${code}, signal ${signal})`));
  });
  return { server, url: `ws://127.0.0.1:${port}/api` };
}

/**
 * The echo baseline, up and warmed: `round()` measures one round of echoes (the relay phase
 * calls it in turn with the platform's rounds), `finish()` closes it and sums its rounds.
 */
async function startBaseline(opts: Options, failure: Failure, anomalies: string[]) {
  const cleanup = new Cleanup();
  const stop = async (): Promise<void> => {
    const errors = await cleanup.run();
    if (errors.length > 0) failure.fail(new Error(`baseline clean-up: ${errors.join('; ')}`));
  };
  try {
    log('baseline: starting the fastify WebSocket echo server');
    const { server, url } = await startChildServer('ws-echo-server', [], failure, cleanup);

    log(`baseline: connecting ${opts.clients} clients to ${url}`);
    const conns: Conn[] = [];
    const connect = await connectAll([url], opts, failure, cleanup, conns);
    log(`baseline: ${opts.warmup} warm-up echoes per client`);
    await round('baseline warm-up', conns, undefined, opts.warmup, opts, failure, anomalies);
    const serverPid = server.pid;
    const rounds = new MeasuredRounds(
      new CpuMeter({ server: () => (serverPid === undefined ? [] : [serverPid]) }),
      (n) => `baseline: round ${n}: ${opts.relays} echoes per client`,
      async () => await round('baseline', conns, undefined, opts.relays, opts, failure, anomalies),
    );
    return {
      /** One measured round of echoes (its result is also kept for `finish`). */
      round: async (): Promise<RoundResult> => await rounds.next(),
      finish: async () => {
        try {
          const closeMs = await closeAll(conns, opts.timeoutMs, failure);
          log('baseline: done');
          const echo = mergeRounds(rounds.results);
          return {
            server: 'fastify + @fastify/websocket echo (child process)',
            connectMs: stats(connect),
            echo: {
              ...summarize(echo),
              /** Messages per second of each round. */
              rounds: rounds.results.map((r) => r.perSecond),
              /** CPU µs per echoed message of the echo server, while they ran. */
              cpuUsPerMessage: perUnit(rounds.cpuMs, echo.messages, 1000),
            },
            closeAllMs: Math.round(closeMs),
          };
        } finally {
          await stop();
        }
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The middle value (the mean of the two middle ones), or undefined for none. */
function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const m =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return Math.round(m * 100) / 100;
}

/** CPU ms of each process group, summed over measurements. */
function addCpu(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** One side's measured rounds: each one's result, and the CPU its processes used meanwhile. */
class MeasuredRounds {
  readonly results: RoundResult[] = [];
  #cpuMs: Record<string, number> = {};
  readonly #meter: CpuMeter;
  readonly #say: (n: number) => string;
  readonly #run: () => Promise<RoundResult>;

  constructor(meter: CpuMeter, say: (n: number) => string, run: () => Promise<RoundResult>) {
    this.#meter = meter;
    this.#say = say;
    this.#run = run;
  }

  /** CPU ms of each process group over the rounds so far. */
  get cpuMs(): Record<string, number> {
    return this.#cpuMs;
  }

  async next(): Promise<RoundResult> {
    log(this.#say(this.results.length + 1));
    const took = this.#meter.start();
    const r = await this.#run();
    this.#cpuMs = addCpu(this.#cpuMs, took());
    this.results.push(r);
    return r;
  }
}

/** Rounds as one: their samples together, their messages over their time. */
function mergeRounds(rounds: readonly RoundResult[]): RoundResult {
  const messages = rounds.reduce((n, r) => n + r.messages, 0);
  const seconds = rounds.reduce((n, r) => n + r.seconds, 0);
  const mean = (f: (r: RoundResult) => number): number =>
    rounds.length === 0 ? 0 : Math.round(rounds.reduce((n, r) => n + f(r), 0) / rounds.length);
  return {
    delivery: rounds.flatMap((r) => r.delivery),
    sameGateway: rounds.flatMap((r) => r.sameGateway),
    crossGateway: rounds.flatMap((r) => r.crossGateway),
    reply: rounds.flatMap((r) => r.reply),
    messages,
    seconds,
    perSecond: seconds === 0 ? 0 : Math.round(messages / seconds),
    client: {
      cpuPercent: mean((r) => r.client.cpuPercent),
      loopBusyPercent: mean((r) => r.client.loopBusyPercent),
    },
  };
}

type Baseline = Awaited<ReturnType<typeof startBaseline>>;

/**
 * The parts of a relay (`bench/lib/ws-relay-server.ts`): as many bare relay servers as the
 * platform has gateways, on the platform's NATS, with as many clients split between them the
 * same way, in rooms of the same size. `round()` measures one round of relays through them (in
 * turn with the echo's and the platform's rounds), `finish()` closes them and sums the rounds.
 */
async function startRelayParts(
  opts: Options,
  nats: SignalingPlatform['nats'],
  failure: Failure,
  anomalies: string[],
) {
  const cleanup = new Cleanup();
  const stop = async (): Promise<void> => {
    const errors = await cleanup.run();
    if (errors.length > 0) failure.fail(new Error(`bare relay clean-up: ${errors.join('; ')}`));
  };
  try {
    log(`parts: starting ${opts.gateways} bare relay server(s) on the platform's NATS`);
    const prefix = `bench-parts-${randomBytes(4).toString('hex')}`;
    const servers: ManagedProcess[] = [];
    const urls: string[] = [];
    for (let i = 0; i < opts.gateways; i++) {
      const config = {
        name: `r${i}`,
        natsUrl: nats.url,
        user: nats.user,
        passwordFile: nats.passwordFile,
        prefix,
      };
      const { server, url } = await startChildServer(
        'ws-relay-server',
        [JSON.stringify(config)],
        failure,
        cleanup,
        `ws-relay-server-${i + 1}`,
      );
      servers.push(server);
      urls.push(url);
    }

    log(`parts: connecting ${opts.clients} clients to ${urls.join(' and ')}`);
    const conns: Conn[] = [];
    await connectAll(urls, opts, failure, cleanup, conns);
    await pool(conns, opts.concurrency, async (c) => {
      const { frame } = await failure.guard(
        `hello of client ${c.index}`,
        opts.timeoutMs,
        c.request(failure, 'hello', {}),
      );
      const socketId = (frame.d as { socketId?: unknown } | undefined)?.socketId;
      if (frame.s !== true || typeof socketId !== 'string')
        throw new Error(`client ${c.index}: hello: ${describeReply(frame)}`);
      c.socketId = socketId;
      c.userId = socketId;
      c.roomId = String(Math.floor(c.index / opts.roomSize));
    });
    const peersOf = roomPeers(conns);
    log(`parts: ${opts.warmup} warm-up relays per client`);
    await round('bare relay warm-up', conns, peersOf, opts.warmup, opts, failure, anomalies);
    const pids = (): number[] => servers.flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
    const rounds = new MeasuredRounds(
      new CpuMeter({ servers: pids, nats: () => pidsNamed('nats-server') }),
      (n) => `parts: round ${n}: ${opts.relays} relays per client`,
      async () => await round('bare relay', conns, peersOf, opts.relays, opts, failure, anomalies),
    );
    return {
      /** One measured round of relays (its result is also kept for `finish`). */
      round: async (): Promise<RoundResult> => await rounds.next(),
      finish: async () => {
        try {
          await closeAll(conns, opts.timeoutMs, failure);
          log('parts: done');
          const relay = mergeRounds(rounds.results);
          return {
            servers: `${opts.gateways} × fastify + @fastify/websocket relaying through NATS (child processes)`,
            relay: {
              ...summarize(relay),
              /** Messages per second of each round. */
              rounds: rounds.results.map((r) => r.perSecond),
              /** CPU µs per relayed message of the servers and of NATS, while they ran. */
              cpuUsPerMessage: perUnit(rounds.cpuMs, relay.messages, 1000),
            },
          };
        } finally {
          await stop();
        }
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

type RelayParts = Awaited<ReturnType<typeof startRelayParts>>;

/** Each client's peers: the other clients with its roomId. */
function roomPeers(conns: readonly Conn[]): (c: Conn) => readonly Conn[] {
  const members = new Map<string, Conn[]>();
  for (const c of conns) members.set(c.roomId, [...(members.get(c.roomId) ?? []), c]);
  const peers = new Map<Conn, Conn[]>(
    conns.map((c) => [c, (members.get(c.roomId) ?? []).filter((p) => p !== c)]),
  );
  return (c) => peers.get(c) ?? [];
}

// ------------------------------------------------------------------------------ platform

interface PlatformRun {
  services: ServiceProcess[];
}

/**
 * Where a join's time goes inside the platform, as the services measure it (means over the
 * joins): the gateway from the join frame to joinR, its bus request to the rooms service, and
 * the rooms service's handling of it (the statement and the broadcast).
 */
class JoinTimes {
  readonly #own: SignalingPlatform;
  #before: number[] = [];

  constructor(own: SignalingPlatform) {
    this.#own = own;
  }

  async #read(): Promise<number[]> {
    const series: ['gateway' | 'rooms', string, string][] = [
      ['gateway', 'sb_gateway_request_duration_seconds', 'action="join"'],
      ['gateway', 'sb_bus_client_request_duration_seconds', 'method="rooms.join"'],
      ['rooms', 'sb_bus_served_request_duration_seconds', 'method="rooms.join"'],
    ];
    const [gateways, rooms] = await Promise.all([
      this.#own.scrape('gateway'),
      this.#own.scrape('rooms'),
    ]);
    return series.flatMap(([group, name, labels]) => {
      const texts = group === 'gateway' ? gateways : rooms;
      return [sumMetric(texts, `${name}_sum`, labels), sumMetric(texts, `${name}_count`, labels)];
    });
  }

  async start(): Promise<void> {
    this.#before = await this.#read();
  }

  async stop() {
    const after = await this.#read();
    const d = after.map((v, i) => v - (this.#before[i] ?? 0));
    const mean = (i: number): number | undefined => {
      const count = d[i + 1] ?? 0;
      return count === 0 ? undefined : Math.round((1e5 * (d[i] ?? 0)) / count) / 100;
    };
    return { gateway: mean(0), busRequest: mean(2), roomsHandler: mean(4) };
  }
}

/** Tokens of users `<prefix>-0`, `<prefix>-1`… for any room. */
async function mintTokens(n: number, prefix: string): Promise<string[]> {
  const secret = process.env['AUTH_HS256_SECRET'] ?? DEV_HS256_SECRET;
  return await Promise.all(
    Array.from(
      { length: n },
      async (_, i) => await mintToken({ secret, sub: `${prefix}-${i}`, rooms: ['*'] }),
    ),
  );
}

/**
 * Unmeasured joins first, as the join baseline's are: clients of their own join rooms of
 * their own (as many at once as the measured ones), then close. A gateway or rooms process
 * runs for days; what is measured is its steady state, not its first requests (V8 compiling
 * the code paths, pools opening).
 */
async function warmUpJoins(
  opts: Options,
  urls: readonly string[],
  runTag: string,
  failure: Failure,
  cleanup: Cleanup,
): Promise<void> {
  log(`platform: ${opts.joinWarmup} warm-up joins`);
  const tokens = await mintTokens(opts.joinWarmup, 'bench-warmup');
  const conns: Conn[] = [];
  await connectAll(
    urls,
    { clients: opts.joinWarmup, concurrency: opts.concurrency, timeoutMs: opts.timeoutMs },
    failure,
    cleanup,
    conns,
  );
  await pool(conns, opts.concurrency, async (c) => {
    const roomId = `bench-${runTag}-warmup-${Math.floor(c.index / opts.roomSize)}`;
    const { frame } = await failure.guard(
      `warm-up join of client ${c.index}`,
      opts.timeoutMs,
      c.request(failure, 'join', { roomId, bearer: tokens[c.index], platform: 'Web' }),
    );
    if (frame.a !== 'joinR' || frame.s !== true)
      throw new Error(`warm-up client ${c.index}: join into ${roomId}: ${describeReply(frame)}`);
  });
  await closeAll(conns, opts.timeoutMs, failure);
}

/** The clients' part against the platform: connect, relay, leave. */
async function runPlatform(
  opts: Options,
  failure: Failure,
  anomalies: string[],
  cleanup: Cleanup,
  run: PlatformRun,
  baseline: Baseline | undefined,
) {
  const capacity = Math.max(50, opts.roomSize);
  const own =
    opts.urls.length > 0
      ? undefined
      : await startSignalingPlatform(
          {
            gateways: opts.gateways,
            rooms: opts.rooms,
            joinWaitMs: opts.timeoutMs,
            maxInflight: Math.max(32, opts.window + 1),
            roomCapacity: capacity,
          },
          { failure, cleanup, services: run.services },
        );
  const urls = own?.urls ?? opts.urls;
  const setup = own?.setup ?? { started: 'elsewhere' };
  // The join baseline runs against the platform's own database, before the platform's joins.
  const joinTx =
    own !== undefined && opts.baseline
      ? await runJoinTx(
          {
            databaseUrl: own.databaseUrl,
            poolMax: own.poolMax,
            joins: opts.clients,
            roomSize: opts.roomSize,
            capacity,
            concurrency: opts.concurrency,
            timeoutMs: opts.timeoutMs,
            warmup: opts.joinWarmup,
          },
          failure,
        )
      : undefined;

  const runTag = randomBytes(4).toString('hex');
  const rooms = opts.clients / opts.roomSize;
  log(`platform: minting ${opts.clients} tokens`);
  const tokens = await mintTokens(opts.clients, 'bench-user');

  if (opts.joinWarmup > 0) await warmUpJoins(opts, urls, runTag, failure, cleanup);
  own?.rss.mark('idle');

  log(`platform: connecting ${opts.clients} clients to ${urls.join(' and ')}`);
  const conns: Conn[] = [];
  const connect = await connectAll(urls, opts, failure, cleanup, conns);
  own?.rss.mark('connected');

  log(`platform: ${opts.clients} joins into ${rooms} rooms of ${opts.roomSize}`);
  const joinMs: number[] = [];
  const inside = own === undefined ? undefined : new JoinTimes(own);
  await inside?.start();
  const joinLoad = clientLoad();
  const joinCpu = own?.cpu.start();
  const joinT0 = performance.now();
  const joinReply = validator(JoinReply);
  const roomSizeSeen = new Map<string, number>();
  await pool(conns, opts.concurrency, async (c) => {
    c.roomId = `bench-${runTag}-${Math.floor(c.index / opts.roomSize)}`;
    c.userId = `bench-user-${c.index}`;
    const { frame, ms } = await failure.guard(
      `join of client ${c.index}`,
      opts.timeoutMs,
      c.request(failure, 'join', { roomId: c.roomId, bearer: tokens[c.index], platform: 'Web' }),
    );
    if (frame.a !== 'joinR' || frame.s !== true)
      throw new Error(`client ${c.index}: join into ${c.roomId}: ${describeReply(frame)}`);
    const parsed = joinReply.parse(frame.d);
    if (!parsed.ok)
      throw new Error(
        `client ${c.index}: joinR is not a JoinReply: ${formatIssues(parsed.issues)}`,
      );
    joinMs.push(ms);
    c.socketId = parsed.value.socketId;
    const { roomSize, sessions } = parsed.value;
    roomSizeSeen.set(c.roomId, Math.max(roomSize, roomSizeSeen.get(c.roomId) ?? 0));
    if (sessions.length !== roomSize - 1 || sessions.some((s) => s.socketId === c.socketId))
      anomalies.push(
        `client ${c.index}: joinR roomSize ${roomSize} with sessions ${JSON.stringify(sessions)}`,
      );
  });
  const joinSeconds = (performance.now() - joinT0) / 1000;
  const joinClient = joinLoad();
  const joinCpuMs = joinCpu?.();
  const joinInside = await inside?.stop();
  own?.rss.mark('joined');
  for (const [roomId, size] of roomSizeSeen)
    if (size !== opts.roomSize)
      anomalies.push(`${roomId}: the largest roomSize a joinR reported was ${size}`);

  const peersOf = roomPeers(conns);

  log(`platform: ${opts.warmup} warm-up relays per client`);
  await round('platform warm-up', conns, peersOf, opts.warmup, opts, failure, anomalies);
  // The parts of a relay, measured here: they need the platform's NATS.
  const parts =
    own !== undefined && opts.baseline
      ? await startRelayParts(opts, own.nats, failure, anomalies)
      : undefined;
  const batchCounters = async (): Promise<[number, number] | undefined> => {
    if (own === undefined) return undefined;
    const texts = await own.scrape('gateway');
    return [
      sumMetric(texts, 'sb_gateway_relay_batches_total'),
      sumMetric(texts, 'sb_gateway_relay_batch_items_total'),
    ];
  };
  const batchesBefore = await batchCounters();
  // The rounds: the baseline's (if measured here) and the platform's in turn, so that both
  // see the machine as it is at that moment.
  const relayRounds: RoundResult[] = [];
  let relayCpuMs: Record<string, number> | undefined;
  let relayParts: Awaited<ReturnType<RelayParts['finish']>> | undefined;
  try {
    for (let k = 0; k < opts.rounds; k++) {
      await baseline?.round();
      await parts?.round();
      log(`platform: round ${k + 1}: ${opts.relays} relays per client`);
      const took = own?.cpu.start();
      relayRounds.push(
        await round('platform', conns, peersOf, opts.relays, opts, failure, anomalies),
      );
      const ms = took?.();
      if (ms !== undefined) relayCpuMs = addCpu(relayCpuMs ?? {}, ms);
    }
  } finally {
    relayParts = await parts?.finish();
  }
  const relay = mergeRounds(relayRounds);
  const batchesAfter = await batchCounters();
  const relayBatches =
    batchesBefore === undefined || batchesAfter === undefined
      ? undefined
      : {
          sent: batchesAfter[0] - batchesBefore[0],
          items: batchesAfter[1] - batchesBefore[1],
        };

  log('platform: leaving (the first of each room, then the rest)');
  const leavers: Conn[] = [];
  const roomsLeft = new Set<string>();
  for (const c of conns) {
    if (roomsLeft.has(c.roomId)) continue;
    roomsLeft.add(c.roomId);
    leavers.push(c);
  }
  const leftAt = new Map<string, number>();
  const leaveMs: number[] = [];
  const expected = leavers.length * (opts.roomSize - 1);
  let finish: (() => void) | undefined;
  const allSeen = new Promise<void>((resolve) => {
    finish = resolve;
  });
  for (const c of conns) {
    c.onEvent = (target, frame, at) => {
      const d = frame.d as { socketId?: unknown; roomSize?: unknown; roomId?: unknown } | undefined;
      const t0 = typeof d?.socketId === 'string' ? leftAt.get(d.socketId) : undefined;
      if (frame.a !== 'eventLeave' || t0 === undefined) {
        target.countEvent(frame);
        return;
      }
      if (d?.roomId !== target.roomId || d.roomSize !== opts.roomSize - 1)
        anomalies.push(`client ${target.index}: eventLeave ${JSON.stringify(d)}`);
      leaveMs.push(at - t0);
      if (leaveMs.length === expected) finish?.();
    };
  }
  for (const c of leavers) {
    leftAt.set(c.socketId, performance.now());
    c.leave();
  }
  await failure.guard(
    'eventLeave of the first leaver of each room',
    opts.timeoutMs,
    Promise.all([allSeen, ...leavers.map(async (c) => await c.closed)]),
    () => `${leaveMs.length}/${expected} eventLeave`,
  );
  for (const c of conns) c.onEvent = undefined;
  const rest = conns.filter((c) => !leavers.includes(c));
  const closeMs = await closeAll(rest, opts.timeoutMs, failure);
  const memory =
    own === undefined ? undefined : gatewayMemory(own.rss.stop(), own.gatewayNames, opts);
  log('platform: done');
  return {
    gateways: urls,
    setup,
    connectMs: stats(connect),
    join: {
      ms: stats(joinMs),
      seconds: Math.round(joinSeconds * 1000) / 1000,
      perSecond: Math.round(opts.clients / joinSeconds),
      client: joinClient,
      /** CPU ms per join of each process (group), while the joins ran. */
      cpuMsPerJoin: perUnit(joinCpuMs, opts.clients, 1),
      /** Mean ms of a join's parts inside the platform, from the services' own histograms. */
      insideMs: joinInside,
    },
    relay: {
      ...summarize(relay),
      /** CPU µs per relayed message of each process (group), while they ran. */
      cpuUsPerMessage: perUnit(relayCpuMs, relay.messages, 1000),
      /** Messages per second of each round. */
      rounds: relayRounds.map((r) => r.perSecond),
      /** Relay batches the gateways sent each other while they ran, and the relays in them. */
      batches: relayBatches,
    },
    joinTx,
    relayParts,
    leave: { eventLeaveMs: stats(leaveMs), closeRestMs: Math.round(closeMs), left: rest.length },
    /** Resident memory of each gateway process (VmRSS, MiB; sampled every 50 ms). */
    memory,
    otherEvents: otherEvents(conns),
  };
}

/**
 * Each gateway's VmRSS: before the clients connected, after all joins, the largest sampled
 * (and VmHWM), and what a joined session added, KiB (its clients are 1/gateways of them).
 */
function gatewayMemory(rss: RssResult, names: readonly string[], opts: Options) {
  return Object.fromEntries(
    names.map((name) => {
      const idle = rss.marks['idle']?.[name] ?? NaN;
      const joined = rss.marks['joined']?.[name] ?? NaN;
      const sessions = Math.ceil(opts.clients / names.length);
      return [
        name,
        {
          idleMiB: idle,
          connectedMiB: rss.marks['connected']?.[name] ?? NaN,
          joinedMiB: joined,
          peakMiB: rss.peakMiB[name] ?? NaN,
          hwmMiB: rss.hwmMiB[name] ?? NaN,
          sessions,
          kibPerSession: Math.round(((joined - idle) * 1024) / sessions),
        },
      ];
    }),
  );
}

// ---------------------------------------------------------------------------------- report

type BaselineResult = Awaited<ReturnType<Baseline['finish']>>;
type PlatformResult = Awaited<ReturnType<typeof runPlatform>>;
type JoinTxResult = Awaited<ReturnType<typeof runJoinTx>>;
type RelayPartsResult = Awaited<ReturnType<RelayParts['finish']>>;

function goalText(g: ReturnType<typeof goals>): string {
  const v = (x: number | undefined): string => (x === undefined ? 'not measured' : String(x));
  return [
    `platform ÷ baseline: joins/s ${v(g.joinThroughput)} (goal ≥ 0.5), ` +
      `join p50 ${v(g.joinLatency)}× (goal ≤ 2 at --concurrency 1; this run: ${g.concurrency}), ` +
      `relays/s ${v(g.relayThroughput)} (median of ${g.relayRounds.length === 0 ? 'no' : g.relayRounds.join(', ')}; goal ≥ 0.5 with 2 gateways; this run: ${g.gateways})`,
    `relays/s ÷ their bare parts: ${v(g.relayOfParts)}; the bare relay's ÷ the echo's: ${v(g.partsOfEcho)} (medians of the rounds)`,
  ].join('\n');
}

/** The issue's goals, as ratios of this run's figures (undefined: not measured here). */
function goals(
  opts: Options,
  platform: PlatformResult | undefined,
  baseline: BaselineResult | undefined,
) {
  const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
    a === undefined || b === undefined || b === 0 ? undefined : Math.round((a / b) * 100) / 100;
  const joinTx = platform?.joinTx;
  const echoes = baseline?.echo.rounds ?? [];
  const perRound = (xs: readonly number[], ys: readonly number[]): number[] =>
    xs.flatMap((x, k) => {
      const r = ratio(x, ys[k]);
      return r === undefined ? [] : [r];
    });
  const relayRatios = perRound(platform?.relay.rounds ?? [], echoes);
  const parts = platform?.relayParts?.relay.rounds ?? [];
  return {
    /** platform joins/s ÷ bare transactions/s: at least 0.5. */
    joinThroughput: ratio(platform?.join.perSecond, joinTx?.perSecond),
    /** join p50 ÷ bare transaction p50: at most 2 with --concurrency 1. */
    joinLatency: ratio(platform?.join.ms?.p50, joinTx?.ms?.p50),
    /**
     * relays/s ÷ echoes/s, the median of the rounds' (each platform round beside the echo
     * round just before it): at least 0.5 with two gateways.
     */
    relayThroughput: median(relayRatios),
    /** The rounds' ratios. */
    relayRounds: relayRatios,
    /**
     * Not a goal of the issue, the measure of what is left: relays/s ÷ the bare relay's (the
     * same design with nothing else: its parts), and the bare relay's ÷ the echo's, the
     * medians of the rounds'.
     */
    relayOfParts: median(perRound(platform?.relay.rounds ?? [], parts)),
    partsOfEcho: median(perRound(parts, echoes)),
    concurrency: opts.concurrency,
    gateways: opts.gateways,
  };
}

function report(
  opts: Options,
  frameBytes: number,
  platform: PlatformResult | undefined,
  baseline: BaselineResult | undefined,
): string {
  const skipped = 'skipped';
  const na = '—';
  const p = <T>(f: (r: PlatformResult) => T): T | string =>
    platform === undefined ? skipped : f(platform);
  const b = <T>(f: (r: BaselineResult) => T): T | string =>
    baseline === undefined ? skipped : f(baseline);
  const joinTx = platform?.joinTx;
  const jt = <T>(f: (r: JoinTxResult) => T): T | string =>
    joinTx === undefined ? skipped : f(joinTx);
  const relayParts = platform?.relayParts;
  const parts = <T>(f: (r: RelayPartsResult) => T): T | string =>
    relayParts === undefined ? skipped : f(relayParts);
  const rows: [string, string, string][] = [
    [
      'connect, ms (p50 / p99 / max)',
      p((r) => fmt(r.connectMs, true)),
      b((r) => fmt(r.connectMs, true)),
    ],
    ['join, ms (p50 / p99 / max)', p((r) => fmt(r.join.ms, true)), jt((t) => fmt(t.ms, true))],
    ['joins per second', p((r) => String(r.join.perSecond)), jt((t) => String(t.perSecond))],
    [
      '  inside, mean ms: gateway / rooms request / rooms',
      p((r) => {
        const i = r.join.insideMs;
        const f = (v: number | undefined): string => (v === undefined ? '—' : String(v));
        return i === undefined
          ? '—'
          : `${f(i.gateway)} / ${f(i.busRequest)} / ${f(i.roomsHandler)}`;
      }),
      na,
    ],
    [
      '  CPU per join, ms',
      p((r) => cpuText(r.join.cpuMsPerJoin)),
      jt((t) => cpuText(t.cpuMsPerJoin)),
    ],
    ['relay → peer, ms (p50 / p99)', p((r) => fmt(r.relay.deliveryMs)), na],
    ['  peer on the same gateway', p((r) => fmt(r.relay.sameGatewayMs)), na],
    ['  peer on the other gateway', p((r) => fmt(r.relay.crossGatewayMs)), na],
    ['relay → exchangeCandidateR, ms', p((r) => fmt(r.relay.replyMs)), na],
    ['echo round trip, ms (p50 / p99)', na, b((r) => fmt(r.echo.deliveryMs))],
    [
      'messages per second (each round)',
      p((r) => `${r.relay.perSecond} (${r.relay.rounds.join(', ')})`),
      b((r) => `${r.echo.perSecond} (${r.echo.rounds.join(', ')})`),
    ],
    [
      '  CPU per message, µs',
      p((r) => cpuText(r.relay.cpuUsPerMessage)),
      b((r) => cpuText(r.echo.cpuUsPerMessage)),
    ],
    [
      '  bare relay: per second (each round)',
      na,
      parts((x) => `${x.relay.perSecond} (${x.relay.rounds.join(', ')})`),
    ],
    ['    CPU per message, µs', na, parts((x) => cpuText(x.relay.cpuUsPerMessage))],
    ['    relay → peer, ms (p50 / p99)', na, parts((x) => fmt(x.relay.deliveryMs))],
    [
      '  batches between gateways (relays each)',
      p((r) =>
        r.relay.batches === undefined
          ? '—'
          : `${r.relay.batches.sent} (${r.relay.batches.sent === 0 ? 0 : Math.round((10 * r.relay.batches.items) / r.relay.batches.sent) / 10})`,
      ),
      na,
    ],
    [
      "  clients' process: CPU, loop busy",
      p((r) => `${r.relay.client.cpuPercent}%, ${r.relay.client.loopBusyPercent}%`),
      b((r) => `${r.echo.client.cpuPercent}%, ${r.echo.client.loopBusyPercent}%`),
    ],
    ['leave → peers get eventLeave, ms', p((r) => fmt(r.leave.eventLeaveMs, true)), na],
    [
      'close the rest, ms (all at once)',
      p((r) => `${r.leave.closeRestMs} (${r.leave.left} sockets)`),
      b((r) => `${r.closeAllMs} (${opts.clients} sockets)`),
    ],
    ...Object.entries(platform?.memory ?? {}).map(([name, m]): [string, string, string] => [
      `${name} RSS, MiB (idle / joined / peak)`,
      `${m.idleMiB} / ${m.joinedMiB} / ${m.hwmMiB} (${m.kibPerSession} KiB per session)`,
      na,
    ]),
  ];
  const head: [string, string, string] = [
    '',
    `platform (${opts.gateways} gateway${opts.gateways === 1 ? '' : 's'}${opts.urls.length > 0 ? ' at --url' : opts.rooms === 1 ? ' + rooms' : ` + ${opts.rooms} rooms`})`,
    'baselines (fastify ws echo; bare relay)',
  ];
  const msgs = opts.clients * opts.relays;
  return [
    `signaling benchmark: ${opts.clients} clients in rooms of ${opts.roomSize}, ` +
      `${opts.rounds} rounds of ${opts.relays} relays each (${msgs} messages a round, ` +
      `the baseline's and the platform's in turn, ${opts.window} in flight per client, ` +
      `${frameBytes}-byte frames, ${opts.warmup} warm-up), ${opts.concurrency} connects/joins at once ` +
      `(after ${opts.joinWarmup} warm-up joins on each side)`,
    machineLine(),
    '',
    ...columns([head, ...rows]),
    ...(platform === undefined || Object.keys(platform.otherEvents).length === 0
      ? []
      : [
          `other events the clients got: ${Object.entries(platform.otherEvents)
            .map(([name, n]) => `${name} ×${n}`)
            .join(', ')}`,
        ]),
    '',
    goalText(goals(opts, platform, baseline)),
    '',
    'join: the platform from sending join to joinR; the baseline one bare pg transaction.',
    'relay → peer: from sending exchangeCandidate to the peer receiving eventExchangeCandidate.',
    'bare relay: the parts of a relay, bare fastify ws servers (as many as gateways) relaying',
    "  through NATS with the gateways' design (group commit), nothing else (bench/lib/ws-relay-server.ts).",
    'The clients run in this one process; its CPU use shows whether they were the bottleneck.',
    ...(platform?.memory === undefined
      ? []
      : [
          "RSS: VmRSS before the clients connected and after all joins; peak: VmHWM (the kernel's).",
        ]),
  ].join('\n');
}

// ------------------------------------------------------------------------------------ main

async function main(
  failure: Failure,
  cleanup: Cleanup,
  run: PlatformRun,
  anomalies: string[],
): Promise<number> {
  const opts = parseOptions();
  const startedAt = new Date();
  const echo = opts.baseline ? await startBaseline(opts, failure, anomalies) : undefined;
  let platform: PlatformResult | undefined;
  let baseline: BaselineResult | undefined;
  try {
    if (opts.platform) {
      platform = await runPlatform(opts, failure, anomalies, cleanup, run, echo);
    } else {
      for (let k = 0; k < opts.rounds; k++) await echo?.round();
    }
  } finally {
    baseline = await echo?.finish();
  }
  if (failure.error !== undefined) throw failure.error;

  const frameBytes = Buffer.byteLength(
    JSON.stringify({
      a: 'exchangeCandidate',
      d: relayData('0'.repeat(32), 0, 0),
      id: opts.relays * opts.clients,
    }),
  );
  const text = report(opts, frameBytes, platform, baseline);
  return finishRun(
    'signaling',
    startedAt,
    { text, anomalies },
    {
      options: opts,
      frameBytes,
      platform:
        platform === undefined ? null : { ...platform, joinTx: undefined, relayParts: undefined },
      baseline:
        baseline === undefined
          ? null
          : {
              ...baseline,
              joinTx: platform?.joinTx ?? null,
              relayParts: platform?.relayParts ?? null,
            },
      goals: goals(opts, platform, baseline),
    },
  );
}

await runBench(cli.usage, async ({ failure, cleanup, anomalies, services }) => {
  const run: PlatformRun = { services };
  return await main(failure, cleanup, run, anomalies);
});
