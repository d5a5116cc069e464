/**
 * NATS for development and tests: use a reachable server with JetStream when there is
 * one, else run the Debian `nats-server` in a project-owned directory on a free port.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
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
export async function probeNats(url: string, timeoutMs = 1500): Promise<NatsProbe> {
  try {
    const nc = await connect({
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
  readonly #spawn: SpawnOptions;
  #proc: ManagedProcess | undefined;

  private constructor(port: number, storeDir: string, spawnOpts: SpawnOptions) {
    this.port = port;
    this.storeDir = storeDir;
    this.#spawn = spawnOpts;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get process(): ManagedProcess | undefined {
    return this.#proc;
  }

  /** Start nats-server with JetStream, storing in `dir`, on `port` (default: a free one). */
  static async start(
    dir: string,
    opts: { port?: number } & SpawnOptions = {},
  ): Promise<NatsServer> {
    const { port, ...spawnOpts } = opts;
    await mkdir(dir, { recursive: true });
    const server = new NatsServer(port ?? (await freePort()), join(dir, 'jetstream'), spawnOpts);
    await server.restart();
    return server;
  }

  /** (Re)start the process on the same port and store (after stop() or kill()). */
  async restart(): Promise<void> {
    if (this.#proc?.running === true) throw new Error('nats-server is running');
    const proc = new ManagedProcess(
      'nats-server',
      natsServerBinary(),
      ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir],
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
