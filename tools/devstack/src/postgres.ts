/**
 * PostgreSQL for development and tests: use a reachable server when there is one, else
 * initialise a cluster with the Debian packages' binaries in a project-owned directory and
 * run it on a free port. PostgreSQL refuses to run as root, so under root the cluster
 * belongs to (and runs as) the `postgres` user the Debian package creates.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './net.ts';
import { ManagedProcess, type SpawnOptions } from './process.ts';

export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const v = versions[0];
  if (v === undefined)
    throw new Error('PostgreSQL server binaries not found (Debian package postgresql)');
  return join(base, v, 'bin');
}

export type PgProbe = { ok: true } | { ok: false; reason: string; code?: string };

export async function probePostgres(url: string, timeoutMs = 2000): Promise<PgProbe> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { ok: true };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      ok: false,
      reason: err instanceof Error ? err.message : String(err),
      ...(typeof code === 'string' ? { code } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The URL of database `name` on the server of `url`. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function quoteIdent(name: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`unsafe database name ${name}`);
  return `"${name}"`;
}

async function withAdmin<T>(serverUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Create database `name` on the server of `serverUrl` if it does not exist; returns its URL. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  await withAdmin(serverUrl, async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await c.query(`CREATE DATABASE ${quoteIdent(name)}`);
  });
  return withDatabase(serverUrl, name);
}

export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  await withAdmin(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}

function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string): number =>
    Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      'running as root and there is no postgres user (Debian package postgresql creates it)',
    );
  }
}

/** A PostgreSQL cluster this tooling started. */
export class PostgresServer {
  readonly port: number;
  readonly dataDir: string;
  readonly #ephemeralDir: string | undefined;
  readonly #spawn: SpawnOptions;
  readonly #command: [string, string[]];
  #proc: ManagedProcess | undefined;

  private constructor(
    port: number,
    dataDir: string,
    command: [string, string[]],
    spawnOpts: SpawnOptions,
    ephemeralDir: string | undefined,
  ) {
    this.port = port;
    this.dataDir = dataDir;
    this.#command = command;
    this.#spawn = spawnOpts;
    this.#ephemeralDir = ephemeralDir;
  }

  /** URL of the `postgres` database (the server URL tests create their databases from). */
  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get process(): ManagedProcess | undefined {
    return this.#proc;
  }

  /**
   * Initialise (when empty) and start a cluster. `dir` is kept between runs; without it a
   * throw-away directory is used and removed by stop(). Under root the cluster runs as the
   * postgres user, so `dir` must be reachable by it (not under a private directory).
   */
  static async start(
    opts: { dir?: string; port?: number; fast?: boolean } & SpawnOptions = {},
  ): Promise<PostgresServer> {
    const { dir, port: wantPort, fast, ...spawnOpts } = opts;
    const owner = runAs();
    const bin = postgresBinDir();
    let dataDir: string;
    let ephemeral: string | undefined;
    if (dir === undefined) {
      ephemeral = await mkdtemp(join(tmpdir(), 'switchboard-pg-'));
      dataDir = join(ephemeral, 'data');
    } else {
      dataDir = dir;
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (owner !== undefined) {
      if (ephemeral !== undefined) await chown(ephemeral, owner.uid, owner.gid);
      await chown(dataDir, owner.uid, owner.gid);
    }
    const asOwner = (cmd: string, args: string[]): [string, string[]] =>
      owner === undefined
        ? [cmd, args]
        : [
            'setpriv',
            ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args],
          ];

    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      const [cmd, args] = asOwner(join(bin, 'initdb'), [
        '-D',
        dataDir,
        '-U',
        'postgres',
        '--auth=trust',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ]);
      execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    const port = wantPort ?? (await freePort());
    const command = asOwner(join(bin, 'postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      '-c',
      'max_connections=200',
      ...(fast === true
        ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
        : []),
    ]);
    const server = new PostgresServer(port, dataDir, command, spawnOpts, ephemeral);
    try {
      await server.restart();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** (Re)start the server on the same port and data (after kill()). */
  async restart(): Promise<void> {
    if (this.#proc?.running === true) throw new Error('postgres is running');
    const proc = new ManagedProcess('postgres', this.#command[0], this.#command[1], this.#spawn);
    this.#proc = proc;
    await waitFor(`postgres on ${this.port}`, async () => {
      if (!proc.running) throw new Error(`postgres exited:\n${proc.output()}`);
      return (await probePostgres(this.url, 500)).ok;
    });
  }

  /**
   * Abrupt stop: immediate shutdown (SIGQUIT — no checkpoint, crash recovery on the next
   * start), the data stays and restart() brings it back. (SIGKILL of the postmaster alone
   * would leave its backends holding the shared memory, and the restart would fail.)
   */
  async kill(): Promise<void> {
    await this.#proc?.stop('SIGQUIT', 10_000);
  }

  /** Fast shutdown (SIGINT: abort transactions, checkpoint, exit); a throw-away cluster is removed. */
  async stop(): Promise<void> {
    await this.#proc?.stop('SIGINT', 20_000);
    if (this.#ephemeralDir !== undefined)
      await rm(this.#ephemeralDir, { recursive: true, force: true });
  }
}
