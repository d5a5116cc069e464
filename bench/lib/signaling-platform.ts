/**
 * The platform of the signaling benchmarks (`bench/signaling.ts`, `bench/room.ts`): NATS and
 * PostgreSQL, the rooms service and one or two gateways, started for the run, with meters on
 * their processes (CPU, resident memory); and the join baseline (`bench/lib/join-tx.ts`)
 * against the platform's database.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  ManagedProcess,
  NODE,
  ROOT,
  redact,
  uniquePrefix,
  type Infra,
  type Platform,
  type ServiceProcess,
} from '@switchboard/devstack';
import { ends, log, perUnit, stats, type BenchRun, type Failure } from './cli.ts';
import { BENCH_GATEWAY_ENV, RunServices, benchInfra, infraRecord } from './infra.ts';
import { CpuMeter, pidsNamed } from './proc-cpu.ts';
import { RssSampler } from './proc-mem.ts';

/** The rooms service's database pool, and the join baseline's. */
export const POOL_MAX = 10;

export interface SignalingPlatformOptions {
  /** 1 or 2. */
  gateways: number;
  /** Rooms service replicas (one queue group). */
  rooms: number;
  /**
   * How long a client may wait between its connect and its join (WS_JOIN_TIMEOUT_MS): the
   * benchmarks connect every client before the first join.
   */
  joinWaitMs: number;
  /** Requests in progress per connection (WS_MAX_INFLIGHT). */
  maxInflight: number;
  /** Sessions a room admits (ROOM_DEFAULT_CAPACITY). */
  roomCapacity: number;
}

export type SignalingPlatform = Awaited<ReturnType<typeof startSignalingPlatform>>;

/**
 * NATS, PostgreSQL, rooms and one or two gateways, stopped by the run's clean-up. Returns the
 * gateways' /api URLs, the database, a CPU meter (gateways, rooms, PostgreSQL, NATS) and a
 * sampler of the VmRSS of each gateway and rooms process, running from now on.
 */
export async function startSignalingPlatform(
  opts: SignalingPlatformOptions,
  run: Pick<BenchRun, 'failure' | 'cleanup' | 'services'>,
) {
  const { failure, cleanup } = run;
  const services = new RunServices(run);

  const infra: Infra = await benchInfra(run);

  const subjectPrefix = uniquePrefix('bench');
  const env: Record<string, string> = {
    NATS_URL: infra.natsUrl,
    NATS_SUBJECT_PREFIX: subjectPrefix,
    ...BENCH_GATEWAY_ENV,
    // All clients connect before the joins begin: thousands of them wait longer than a real
    // client would between its connect and its join.
    WS_JOIN_TIMEOUT_MS: String(opts.joinWaitMs),
    WS_MAX_INFLIGHT: String(opts.maxInflight),
    ROOM_DEFAULT_CAPACITY: String(opts.roomCapacity),
    // The join baseline's pool has the same size.
    DATABASE_POOL_MAX: String(POOL_MAX),
    // Not 'warn': ServiceProcess.start learns the port from the 'listening' line, logged at info.
    LOG_LEVEL: 'info',
  };
  log(`platform: starting rooms and a gateway (subjects under "${subjectPrefix}.")`);
  const platform: Platform = await services.startPlatform(infra, {
    subjectPrefix,
    names: ['gateway', 'rooms'],
    env,
  });
  /** A further process of service `name`, ready. */
  const another = async (
    name: 'gateway' | 'rooms',
    label: string,
    what: string,
  ): Promise<ServiceProcess> => {
    const svc = await services.start(name, { ...platform.env }, what, label);
    await svc.waitReady();
    failure.check();
    return svc;
  };
  const gateways = [platform.get('gateway')];
  if (opts.gateways === 2) {
    log('platform: starting a second gateway');
    gateways.push(await another('gateway', 'gateway-2', 'stop the second gateway'));
  }
  const rooms = [platform.get('rooms')];
  for (let i = 2; i <= opts.rooms; i++) {
    log(`platform: starting rooms replica ${i}`);
    rooms.push(await another('rooms', `rooms-${i}`, `stop rooms replica ${i}`));
  }
  const pidOf = (s: ServiceProcess): number[] =>
    s.process.pid === undefined ? [] : [s.process.pid];
  const pids = (svcs: readonly ServiceProcess[]) => (): number[] => svcs.flatMap(pidOf);
  // Each process by its label: gateway, gateway-2, rooms, rooms-2, …
  const rss = new RssSampler(
    Object.fromEntries(
      [...gateways, ...rooms].flatMap((s) => pidOf(s).map((pid) => [s.process.name, pid])),
    ),
  );
  cleanup.add('stop sampling memory', async () => {
    rss.stop();
  });
  return {
    urls: gateways.map((g) => `ws://127.0.0.1:${g.port}/api`),
    /** The processes' labels, in the order of `urls`. */
    gatewayNames: gateways.map((g) => g.process.name),
    databaseUrl: platform.databaseUrl,
    poolMax: POOL_MAX,
    /** The platform's NATS, and the tests' identity on it (for the bare relay baseline). */
    nats: {
      url: infra.natsUrl,
      user: 'test',
      passwordFile: infra.natsCredentials.passwordFile('test'),
    },
    /** The Prometheus text of each process of a group, read once (see `sumMetric`). */
    scrape: async (group: 'gateway' | 'rooms'): Promise<string[]> =>
      await Promise.all(
        (group === 'gateway' ? gateways : rooms).map(async (g) => await g.metrics()),
      ),
    cpu: new CpuMeter({
      gateway: pids(gateways),
      rooms: pids(rooms),
      postgres: () => pidsNamed('postgres'),
      nats: () => pidsNamed('nats-server'),
    }),
    rss,
    setup: {
      started: 'here',
      ...infraRecord(infra),
      serviceEnv: {
        ...env,
        DATABASE_URL: redact(platform.databaseUrl),
        AUTH_HS256_SECRET: '(development secret)',
      },
    },
  };
}

/**
 * A metric's value summed over scraped Prometheus texts: the series whose labels include
 * `labels` (e.g. `method="rooms.join"`), 0 where there is none.
 */
export function sumMetric(texts: readonly string[], name: string, labels = ''): number {
  let total = 0;
  for (const t of texts) {
    for (const line of t.split('\n')) {
      if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
      if (labels !== '' && !line.includes(labels)) continue;
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

export interface JoinTxOptions {
  databaseUrl: string;
  poolMax: number;
  joins: number;
  /** Sessions per room (joins / roomSize rooms). */
  roomSize: number;
  /** What a room admits: the platform's ROOM_DEFAULT_CAPACITY. */
  capacity: number;
  concurrency: number;
  timeoutMs: number;
  /** Unmeasured joins before the measured ones (default none). */
  warmup?: number;
}

/**
 * `baseline.joinTx`: the platform's joins (as many, into rooms as big, as many at once) done
 * as bare pg transactions by a child process (bench/lib/join-tx.ts) with the rooms service's
 * pool size, against the platform's database.
 */
export async function runJoinTx(opts: JoinTxOptions, failure: Failure) {
  log(
    `baseline: ${opts.joins} join transactions with bare pg (pool ${opts.poolMax}, ${opts.warmup ?? 0} warm-up)`,
  );
  const child = new ManagedProcess(
    'join-tx',
    NODE,
    [
      fileURLToPath(new URL('join-tx.ts', import.meta.url)),
      JSON.stringify({
        databaseUrl: opts.databaseUrl,
        joins: opts.joins,
        roomSize: opts.roomSize,
        capacity: opts.capacity,
        concurrency: opts.concurrency,
        poolMax: opts.poolMax,
        tag: randomBytes(4).toString('hex'),
        warmup: opts.warmup ?? 0,
      }),
    ],
    { cwd: ROOT },
  );
  const pgCpu = new CpuMeter({ postgres: () => pidsNamed('postgres') }).start();
  const line = await failure.guard(
    'the join baseline',
    opts.timeoutMs,
    child.waitForLine(/"msg":"result"/, opts.timeoutMs),
  );
  const used = pgCpu();
  const exit = await child.exited;
  if (exit.code !== 0) throw new Error(`join baseline: exit ${exit.code}:\n${child.output()}`);
  const r = JSON.parse(line) as { ms: number[]; seconds: number; cpuMs: number };
  return {
    what: 'BEGIN; room insert-or-lock; count; session insert; outbox events; COMMIT (node-postgres)',
    poolMax: opts.poolMax,
    warmup: opts.warmup ?? 0,
    ms: stats(r.ms),
    /** The first and the last joins (in the order they finished): as the rooms grow. */
    ends: ends(r.ms, 1000),
    seconds: Math.round(r.seconds * 1000) / 1000,
    perSecond: Math.round(opts.joins / r.seconds),
    cpuMsPerJoin: perUnit({ client: r.cpuMs, postgres: used['postgres'] ?? 0 }, opts.joins, 1),
  };
}
