/**
 * NATS for development and tests: the Debian `nats-server`, run in a project-owned
 * directory on a free port, with JetStream and the bus identities (nats-auth.ts) — always
 * with authentication on.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from '@nats-io/transport-node';
import { NatsCredentials } from './nats-auth.ts';
import { freePort, tcpReachable, waitFor } from './net.ts';
import { ManagedProcess, type SpawnOptions } from './process.ts';

export function natsServerBinary(): string {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/bin']) {
    if (dir !== '' && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  throw new Error('nats-server not found (Debian package nats-server; ./run installs it)');
}

export type NatsProbe = { ok: true; jetstream: boolean } | { ok: false; reason: string };

/** Connect once to `url` and report whether it answers and has JetStream. */
export async function probeNats(
  url: string,
  timeoutMs = 1500,
  auth: Partial<ConnectionOptions> = {},
): Promise<NatsProbe> {
  try {
    const nc = await connect({
      ...auth,
      servers: url.split(','),
      timeout: timeoutMs,
      reconnect: false,
      maxReconnectAttempts: 0,
    });
    const jetstream = nc.info?.jetstream === true;
    await nc.close();
    return { ok: true, jetstream };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** A nats-server process this tooling started. */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  /** Who may connect, and what each may do (the configuration file is rendered from them). */
  readonly credentials: NatsCredentials;
  readonly #configFile: string;
  readonly #spawn: SpawnOptions;
  #proc: ManagedProcess | undefined;

  private constructor(
    port: number,
    dir: string,
    credentials: NatsCredentials,
    spawnOpts: SpawnOptions,
  ) {
    this.port = port;
    this.storeDir = join(dir, 'jetstream');
    this.credentials = credentials;
    this.#configFile = join(dir, 'nats-server.conf');
    this.#spawn = spawnOpts;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get process(): ManagedProcess | undefined {
    return this.#proc;
  }

  /**
   * Start nats-server with JetStream, storing in `dir`, on `port` (default: a free one),
   * with the bus identities of `credentials` (default: new ones, in `dir`/auth) — or with
   * `config`, a configuration of the caller's own (e.g. renderNatsServerConfig's for one
   * prefix, with NKeys).
   */
  static async start(
    dir: string,
    opts: { port?: number; credentials?: NatsCredentials; config?: string } & SpawnOptions = {},
  ): Promise<NatsServer> {
    const { port, credentials, config, ...spawnOpts } = opts;
    await mkdir(dir, { recursive: true });
    const server = new NatsServer(
      port ?? (await freePort()),
      dir,
      credentials ?? (await NatsCredentials.generate(join(dir, 'auth'))),
      spawnOpts,
    );
    await writeFile(server.#configFile, config ?? server.credentials.serverConfig(), {
      mode: 0o600,
    });
    await server.restart();
    return server;
  }

  /** (Re)start the process on the same port and store (after stop() or kill()). */
  async restart(): Promise<void> {
    if (this.#proc?.running === true) throw new Error('nats-server is running');
    const proc = new ManagedProcess(
      'nats-server',
      natsServerBinary(),
      [
        '-c',
        this.#configFile,
        '-a',
        '127.0.0.1',
        '-p',
        String(this.port),
        '-js',
        '-sd',
        this.storeDir,
      ],
      this.#spawn,
    );
    this.#proc = proc;
    await proc.waitForLine(/Server is ready/, 20_000);
    await waitFor(`nats-server on ${this.port}`, () => tcpReachable('127.0.0.1', this.port));
  }

  /** Graceful stop (SIGTERM). */
  async stop(): Promise<void> {
    await this.#proc?.stop('SIGTERM');
  }

  /** Abrupt stop, as a crash would. */
  async kill(): Promise<void> {
    await this.#proc?.kill();
  }
}
