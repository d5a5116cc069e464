/** The five services as processes on one NATS and one database, for tests. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  SERVICE_NAMES,
  eventsLeaderBucket,
  roomEventStream,
  webhookParkedStream,
  type ServiceName,
} from '@switchboard/protocol';
import { harnessConnectOptions } from './nats-auth.ts';
import { ROOT } from './paths.ts';
import { NODE, ServiceProcess } from './services.ts';
import { testDatabase } from './testkit.ts';
import { DEV_HS256_SECRET } from './tokens.ts';

export interface Platform {
  readonly services: ReadonlyMap<ServiceName, ServiceProcess>;
  /** The environment every service got (NATS, subject prefix, database, auth). */
  readonly env: Readonly<Record<string, string>>;
  /** The database of this platform (migrated). */
  readonly databaseUrl: string;
  /** The process of `name` (throws if it was not started). */
  get(name: ServiceName): ServiceProcess;
  /** SIGTERM every service and wait for the exits. */
  stop(): Promise<void>;
}

export interface PlatformOptions {
  natsUrl: string;
  subjectPrefix: string;
  /** The platform gets a database of its own on this server, dropped by stop(). */
  pgServerUrl: string;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Which services (default: all five). */
  names?: readonly ServiceName[];
  /** Wait for every /readyz to answer 200 (default true). */
  waitReady?: boolean;
}

export async function startPlatform(opts: PlatformOptions): Promise<Platform> {
  const db = await testDatabase(opts.pgServerUrl);
  await migrate(db.url);
  const env: Record<string, string> = {
    NATS_URL: opts.natsUrl,
    NATS_SUBJECT_PREFIX: opts.subjectPrefix,
    DATABASE_URL: db.url,
    // Small and port-conflict free: one worker, any free WebRtcServer port.
    MEDIASOUP_WORKERS: '1',
    MEDIASOUP_RTC_PORT: '0',
    // The published development secret: a gateway takes it only as a development gateway.
    AUTH_HS256_SECRET: DEV_HS256_SECRET,
    GATEWAY_DEV_TOKENS: 'true',
    // The published development API key: the api service takes it only as a development API.
    API_KEYS: `${DEV_API_KEY}:${DEV_API_SECRET}`,
    API_DEV_KEYS: 'true',
    // Every test client comes from 127.0.0.1: the per-address caps are tested on their own.
    WS_MAX_CONNECTIONS_PER_IP: '100000',
    WS_MAX_UNJOINED_PER_IP: '100000',
    ...opts.env,
  };
  const services = new Map<ServiceName, ServiceProcess>();
  const platform: Platform = {
    services,
    env,
    databaseUrl: db.url,
    get(name) {
      const svc = services.get(name);
      if (svc === undefined) throw new Error(`${name} was not started`);
      return svc;
    },
    async stop() {
      await Promise.all(
        [...services.values()].map(async (s) => {
          await s.stop();
        }),
      );
      await db.drop();
      await removeJetStreamState(opts.natsUrl, opts.subjectPrefix);
    },
  };
  try {
    await Promise.all(
      (opts.names ?? SERVICE_NAMES).map(async (name) => {
        services.set(name, await ServiceProcess.start(name, env));
      }),
    );
    if (opts.waitReady !== false) {
      await Promise.all(
        [...services.values()].map(async (s) => {
          await s.waitReady();
        }),
      );
    }
  } catch (err) {
    await platform.stop();
    throw err;
  }
  return platform;
}

/** Whether a process with this pid exists. */
export function pidAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Apply the rooms service's migrations to `databaseUrl`; resolves with what it printed. */
export async function migrate(databaseUrl: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    NODE,
    [join(ROOT, 'services/rooms/src/db/migrate.ts'), 'deploy'],
    { env: { ...process.env, DATABASE_URL: databaseUrl }, timeout: 60_000, encoding: 'utf8' },
  );
  return stdout;
}

/**
 * Delete what the platform kept in JetStream under `prefix` (the room events stream and its
 * consumers, the events leader's KV bucket, the parked webhooks), so runs on a shared NATS
 * leave nothing behind.
 */
export async function removeJetStreamState(natsUrl: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: natsUrl, timeout: 5000, ...harnessConnectOptions() });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    for (const stream of [
      roomEventStream(prefix),
      `KV_${eventsLeaderBucket(prefix)}`,
      webhookParkedStream(prefix),
    ]) {
      try {
        await jsm.streams.delete(stream);
      } catch {
        // never created
      }
    }
  } finally {
    await nc.close();
  }
}
