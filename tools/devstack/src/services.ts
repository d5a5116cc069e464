/**
 * Services run as real processes (`node services/<name>/src/main.ts`), the way the
 * platform runs them: for `./run start` and for the integration tests.
 */
import { join } from 'node:path';
import {
  ReadinessResponse,
  formatIssues,
  validator,
  type ServiceName,
} from '@switchboard/protocol';

const readinessResponse = validator(ReadinessResponse);
import { NatsCredentials } from './nats-auth.ts';
import { waitFor } from './net.ts';
import { ROOT } from './paths.ts';
import { ManagedProcess, type SpawnOptions } from './process.ts';

export const NODE = join(ROOT, 'node_modules', '.bin', 'node');

/** The settings that say how a process authenticates to NATS. */
const NATS_AUTH_VARS = [
  'NATS_USER',
  'NATS_PASSWORD',
  'NATS_PASSWORD_FILE',
  'NATS_NKEY_SEED',
  'NATS_NKEY_SEED_FILE',
  'NATS_CREDS_FILE',
] as const;

/**
 * How this machine reaches a server bound to `bound` (its HTTP_HOST or OPS_HOST): a wildcard
 * address on loopback, any other as it is (an IPv6 one in brackets, for a URL).
 */
export function reachableHost(bound: unknown): string {
  if (typeof bound !== 'string' || bound === '' || bound === '0.0.0.0') return '127.0.0.1';
  if (bound === '::') return '[::1]';
  return bound.includes(':') ? `[${bound}]` : bound;
}

export function serviceEntry(name: ServiceName): string {
  return join(ROOT, 'services', name, 'src', 'main.ts');
}

export class ServiceProcess {
  readonly name: ServiceName;
  readonly process: ManagedProcess;
  readonly port: number;
  /** The ops port (OPS_PORT): /metrics, and the gateway's status page and /api/status. */
  readonly opsPort: number;

  /** Where this machine reaches the main and the ops server (see `reachableHost`). */
  readonly host: string;
  readonly opsHost: string;

  private constructor(
    name: ServiceName,
    proc: ManagedProcess,
    listening: { port: number; opsPort: number; host: string; opsHost: string },
  ) {
    this.name = name;
    this.process = proc;
    this.port = listening.port;
    this.opsPort = listening.opsPort;
    this.host = listening.host;
    this.opsHost = listening.opsHost;
  }

  /** The main HTTP server: /healthz, /readyz; the gateway's API and demo. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** The ops HTTP server: /metrics, /healthz, /readyz; the gateway's status page. */
  get opsUrl(): string {
    return `http://${this.opsHost}:${this.opsPort}`;
  }

  /**
   * Start a service with `env` (on top of this process's environment) and resolve once its
   * HTTP server listens (not necessarily ready: see waitReady()). Unless `env` says how to
   * authenticate to NATS, the service gets its own identity's credentials on the devstack's
   * NATS (SWITCHBOARD_NATS_AUTH_DIR).
   */
  static async start(
    name: ServiceName,
    env: Record<string, string>,
    opts: SpawnOptions & { label?: string; timeoutMs?: number } = {},
  ): Promise<ServiceProcess> {
    const { label, timeoutMs, ...spawnOpts } = opts;
    const given = { ...spawnOpts.env, ...env };
    const credentials = NatsCredentials.current();
    const identity =
      NATS_AUTH_VARS.some((v) => given[v] !== undefined) || credentials === undefined
        ? {}
        : credentials.env(name);
    const proc = new ManagedProcess(label ?? name, NODE, [serviceEntry(name)], {
      ...spawnOpts,
      env: {
        ...process.env,
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        OPS_HOST: '127.0.0.1',
        OPS_PORT: '0',
        ...identity,
        ...given,
      },
      cwd: ROOT,
    });
    const line = await proc.waitForLine(/"msg":"listening"/, timeoutMs ?? 60_000);
    const { port, opsPort, host, opsHost } = JSON.parse(line) as Record<string, unknown>;
    if (typeof port !== 'number' || typeof opsPort !== 'number') {
      throw new Error(`${name}: no port or opsPort in ${line}`);
    }
    return new ServiceProcess(name, proc, {
      port,
      opsPort,
      host: reachableHost(host),
      opsHost: reachableHost(opsHost),
    });
  }

  /** GET /metrics (on the ops port): Prometheus' text. */
  async metrics(): Promise<string> {
    const res = await fetch(`${this.opsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${this.name} /metrics: HTTP ${String(res.status)}`);
    return await res.text();
  }

  /** GET /readyz: the HTTP status and the validated body. */
  async readyz(): Promise<{ status: number; body: ReadinessResponse }> {
    const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(3000) });
    const body = readinessResponse.parse(await res.json());
    if (!body.ok) throw new Error(`${this.name} /readyz: ${formatIssues(body.issues)}`);
    return { status: res.status, body: body.value };
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${this.process.name} /readyz`,
      async () => {
        if (!this.process.running)
          throw new Error(`${this.process.name} exited:\n${this.process.output()}`);
        try {
          return (await this.readyz()).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  /** Graceful stop (SIGTERM); resolves with the exit code. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    return (await this.process.stop('SIGTERM', timeoutMs)).code;
  }
}
