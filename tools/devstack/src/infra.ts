/**
 * The infrastructure the platform needs — NATS with JetStream and PostgreSQL — found or
 * started, and stopped by `stop()`.
 *
 * NATS always runs with the bus identities (authentication and permissions on): the
 * devstack starts its own nats-server in a project-owned directory on a free port, with
 * fresh credentials, unless a server and its credentials are given (`natsUrl` with
 * `natsAuthDir`, a directory of `<identity>.password` files). PostgreSQL: a configured (or
 * the default local) server is used when it answers; otherwise a cluster is started.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { redactUrls } from '@switchboard/protocol';
import { NatsServer, probeNats } from './nats.ts';
import { DEV_IDENTITIES, NATS_AUTH_DIR_ENV, NatsCredentials } from './nats-auth.ts';
import { PostgresServer, probePostgres, withDatabase } from './postgres.ts';
import { STATE_DIR } from './paths.ts';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
export const DEFAULT_PG_SERVER_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface Infra {
  natsUrl: string;
  /** The bus identities on that NATS (also in SWITCHBOARD_NATS_AUTH_DIR from now on). */
  natsCredentials: NatsCredentials;
  /** A URL of the server's `postgres` database (databases are created from it). */
  pgServerUrl: string;
  /** What was started here (and is stopped by stop()), for the record. */
  started: { nats?: NatsServer; postgres?: PostgresServer };
  stop(): Promise<void>;
}

export interface InfraOptions {
  /** A NATS server to use instead of starting one: only together with `natsAuthDir`. */
  natsUrl?: string | undefined;
  /** The credentials of `natsUrl`'s bus identities: `<identity>.password` files. */
  natsAuthDir?: string | undefined;
  pgServerUrl?: string | undefined;
  /** Keep what is started under this directory (default: STATE_DIR); PostgreSQL data kept between runs. */
  stateDir?: string;
  /** Throw-away PostgreSQL data and fsync off (tests). */
  ephemeral?: boolean;
  log?: (msg: string) => void;
}

/**
 * ensureInfra's options as the environment configures them: NATS_URL with
 * SWITCHBOARD_NATS_AUTH_DIR (else NATS is started with authentication), DATABASE_URL's server
 * (else the usual local one when it answers, else PostgreSQL is started).
 */
export function infraFromEnv(): InfraOptions {
  const configuredDb = process.env['DATABASE_URL'];
  return {
    natsUrl: process.env['NATS_URL'],
    natsAuthDir: process.env[NATS_AUTH_DIR_ENV],
    pgServerUrl:
      configuredDb === undefined || configuredDb === ''
        ? undefined
        : withDatabase(configuredDb, 'postgres'),
  };
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
    } else if (started.nats !== undefined) {
      // The passwords of a run are good for that run only.
      await rm(started.nats.credentials.dir, { recursive: true, force: true });
    }
  };
  await mkdir(stateDir, { recursive: true });
  try {
    let natsUrl: string;
    let natsCredentials: NatsCredentials;
    if (opts.natsAuthDir !== undefined && opts.natsAuthDir !== '') {
      natsUrl = opts.natsUrl ?? DEFAULT_NATS_URL;
      natsCredentials = new NatsCredentials(opts.natsAuthDir);
      const probeAs = DEV_IDENTITIES.find((i) => natsCredentials.has(i));
      if (probeAs === undefined) {
        throw new Error(`NATS: no <identity>.password file in ${opts.natsAuthDir}`);
      }
      const nats = await probeNats(natsUrl, 1500, natsCredentials.connectOptions(probeAs));
      if (!nats.ok || !nats.jetstream) {
        throw new Error(
          `NATS: ${redact(natsUrl)} ${nats.ok ? 'has no JetStream' : `refused ${probeAs} or is unreachable (${nats.reason})`}`,
        );
      }
      log(`NATS: using ${redact(natsUrl)} with the credentials in ${opts.natsAuthDir}`);
    } else {
      if (opts.natsUrl !== undefined && opts.natsUrl !== '') {
        log(
          `NATS: not using ${redact(opts.natsUrl)} (NATS_URL) without its credentials (SWITCHBOARD_NATS_AUTH_DIR)`,
        );
      }
      started.nats = await NatsServer.start(
        join(stateDir, opts.ephemeral === true ? `nats-${process.pid}` : 'nats'),
        {
          logFile: join(stateDir, 'nats-server.log'),
          detached: true,
        },
      );
      natsUrl = started.nats.url;
      natsCredentials = started.nats.credentials;
      log(
        `NATS: started ${natsUrl} with authentication (data in ${started.nats.storeDir}, credentials in ${natsCredentials.dir})`,
      );
    }
    // Every process started from here on (services, tools, test workers) finds them.
    process.env[NATS_AUTH_DIR_ENV] = natsCredentials.dir;

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
    return { natsUrl, natsCredentials, pgServerUrl, started, stop };
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
