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
  ServiceProcess,
  redact,
  startPlatform,
  uniquePrefix,
  type Infra,
  type Platform,
} from '@switchboard/devstack';
import { ends, log, perUnit, stats, type BenchRun, type Failure } from './cli.ts';
import { BENCH_GATEWAY_ENV, benchInfra, watchService } from './infra.ts';
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
  // Set by the clean-up steps that stop services: exits from then on are expected.
  let stopping = false;
  const watch = (svc: ServiceProcess): void => {
    watchService(run, svc, () => stopping);
  };

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
  const platform: Platform = await startPlatform({
    natsUrl: infra.natsUrl,
    subjectPrefix,
    pgServerUrl: infra.pgServerUrl,
    names: ['gateway', 'rooms'],
    env,
  });
  cleanup.add('stop the platform', async () => {
    stopping = true;
    await platform.stop();
  });
  failure.check();
  const gateways = [platform.get('gateway')];
  watch(platform.get('gateway'));
  watch(platform.get('rooms'));
  if (opts.gateways === 2) {
    log('platform: starting a second gateway');
    const gw2 = await ServiceProcess.start('gateway', { ...platform.env }, { label: 'gateway-2' });
    cleanup.add('stop the second gateway', async () => {
      stopping = true;
      await gw2.stop();
    });
    watch(gw2);
    failure.check();
    await gw2.waitReady();
    gateways.push(gw2);
    failure.check();
  }
  const rooms = [platform.get('rooms')];
  for (let i = 2; i <= opts.rooms; i++) {
    log(`platform: starting rooms replica ${i}`);
    const replica = await ServiceProcess.start(
      'rooms',
      { ...platform.env },
      { label: `rooms-${i}` },
    );
    cleanup.add(`stop rooms replica ${i}`, async () => {
      stopping = true;
      await replica.stop();
    });
    watch(replica);
    failure.check();
    await replica.waitReady();
    failure.check();
    rooms.push(replica);
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
      nats: infra.started.nats === undefined ? infra.natsUrl : `${infra.natsUrl} (started here)`,
      postgres:
        infra.started.postgres === undefined
          ? redact(infra.pgServerUrl)
          : `${redact(infra.pgServerUrl)} (started here)`,
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
