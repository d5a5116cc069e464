/**
 * The infrastructure the platform needs — NATS with JetStream and PostgreSQL — found or
 * started: a configured (or default local) server is used when it answers; otherwise one
 * is started in a project-owned directory on a free port and stopped by `stop()`.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { redactUrls } from '@switchboard/protocol';
import { NatsServer, probeNats } from './nats.ts';
import { PostgresServer, probePostgres } from './postgres.ts';
import { STATE_DIR } from './paths.ts';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
export const DEFAULT_PG_SERVER_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface Infra {
  natsUrl: string;
  /** A URL of the server's `postgres` database (databases are created from it). */
  pgServerUrl: string;
  /** What was started here (and is stopped by stop()), for the record. */
  started: { nats?: NatsServer; postgres?: PostgresServer };
  stop(): Promise<void>;
}

export interface InfraOptions {
  natsUrl?: string | undefined;
  pgServerUrl?: string | undefined;
  /** Keep what is started under this directory (default: STATE_DIR); PostgreSQL data kept between runs. */
  stateDir?: string;
  /** Throw-away PostgreSQL data and fsync off (tests). */
  ephemeral?: boolean;
  log?: (msg: string) => void;
}

export async function ensureInfra(opts: InfraOptions = {}): Promise<Infra> {
  const log = opts.log ?? (() => undefined);
  const stateDir = opts.stateDir ?? STATE_DIR;
  const started: Infra['started'] = {};
  const stop = async (): Promise<void> => {
    await Promise.all([started.nats?.stop(), started.postgres?.stop()]);
    // A throw-away NATS keeps nothing either (PostgreSQL's throw-away cluster removes itself).
    if (opts.ephemeral === true && started.nats !== undefined) {
      await rm(dirname(started.nats.storeDir), { recursive: true, force: true });
    }
  };
  await mkdir(stateDir, { recursive: true });
  try {
    let natsUrl = opts.natsUrl ?? DEFAULT_NATS_URL;
    const nats = await probeNats(natsUrl);
    if (nats.ok && nats.jetstream) {
      log(`NATS: using ${redact(natsUrl)}`);
    } else {
      log(
        `NATS: ${redact(natsUrl)} ${nats.ok ? 'has no JetStream' : `unreachable (${nats.reason})`}; starting nats-server`,
      );
      started.nats = await NatsServer.start(
        join(stateDir, opts.ephemeral === true ? `nats-${process.pid}` : 'nats'),
        {
          logFile: join(stateDir, 'nats-server.log'),
          detached: true,
        },
      );
      natsUrl = started.nats.url;
      log(`NATS: started ${natsUrl} (data in ${started.nats.storeDir})`);
    }

    let pgServerUrl = opts.pgServerUrl ?? DEFAULT_PG_SERVER_URL;
    const pgProbe = await probePostgres(pgServerUrl);
    if (pgProbe.ok) {
      log(`PostgreSQL: using ${redact(pgServerUrl)}`);
    } else {
      log(`PostgreSQL: ${redact(pgServerUrl)} unreachable (${pgProbe.reason}); starting a cluster`);
      started.postgres = await PostgresServer.start({
        ...(opts.ephemeral === true ? { fast: true } : { dir: pgDataDir(stateDir) }),
        logFile: join(stateDir, 'postgres.log'),
        detached: true,
      });
      pgServerUrl = started.postgres.url;
      log(`PostgreSQL: started ${redact(pgServerUrl)} (data in ${started.postgres.dataDir})`);
    }
    return { natsUrl, pgServerUrl, started, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Where `./run start` keeps its PostgreSQL cluster between runs. */
export function pgDataDir(stateDir: string): string {
  // Under root the cluster runs as the postgres user, which must be able to reach it:
  // keep it in /var/tmp (not in a clone that may sit under a private directory).
  if (process.getuid?.() === 0) {
    const tag = createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
    return join('/var/tmp', `switchboard-pg-${tag}`);
  }
  return join(stateDir, 'postgres');
}

/** A URL with its credentials redacted (libs/protocol's redactUrls: one helper everywhere). */
export const redact = redactUrls;
