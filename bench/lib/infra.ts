/** The infrastructure and services of a benchmark run. */
import {
  DEV_HS256_SECRET,
  ServiceProcess,
  ensureInfra,
  infraFromEnv,
  redact,
  startPlatform,
  type Infra,
  type Platform,
} from '@switchboard/devstack';
import type { ServiceName } from '@switchboard/protocol';
import { Interrupted, log, type BenchRun } from './cli.ts';

/**
 * The gateway settings of every benchmark's own platform: tokens signed with the published
 * development secret (a development gateway only), and no per-address caps or rate limits,
 * since every simulated client comes from one address.
 */
export const BENCH_GATEWAY_ENV = {
  AUTH_HS256_SECRET: DEV_HS256_SECRET,
  GATEWAY_DEV_TOKENS: 'true',
  WS_MAX_CONNECTIONS_PER_IP: '1000000',
  WS_MAX_UNJOINED_PER_IP: '1000000',
  WS_RATE_LIMIT_PER_S: '100000',
  WS_RATE_LIMIT_BURST: '100000',
} as const;

/**
 * NATS and PostgreSQL as the environment configures them (infraFromEnv), logged; stopped by
 * the run's clean-up.
 */
export async function benchInfra(run: Pick<BenchRun, 'failure' | 'cleanup'>): Promise<Infra> {
  const infra = await ensureInfra({
    ...infraFromEnv(),
    log: (msg) => {
      log(`infra: ${msg}`);
    },
  });
  run.cleanup.add('stop the infrastructure', async () => {
    await infra.stop();
  });
  run.failure.check();
  return infra;
}

/**
 * Keep `svc` in the run's services (its last output is shown on failure); its exit fails the
 * run unless `expected()` says the run is stopping it, or the run was interrupted.
 */
export function watchService(
  run: Pick<BenchRun, 'failure' | 'services'>,
  svc: ServiceProcess,
  expected: () => boolean,
): void {
  run.services.push(svc);
  void svc.process.exited.then(({ code, signal }) => {
    if (!expected() && !(run.failure.error instanceof Interrupted)) {
      run.failure.fail(
        new Error(`${svc.process.name} exited (code ${String(code)}, signal ${String(signal)})`),
      );
    }
  });
}

/**
 * The infrastructure as a run's results record it: each URL (redacted), marked when the run
 * started that server itself.
 */
export function infraRecord(infra: Infra): { nats: string; postgres: string } {
  return {
    nats: infra.started.nats === undefined ? infra.natsUrl : `${infra.natsUrl} (started here)`,
    postgres:
      infra.started.postgres === undefined
        ? redact(infra.pgServerUrl)
        : `${redact(infra.pgServerUrl)} (started here)`,
  };
}

/** The WebSocket API URL (`ws://…/api`) of a gateway. */
export function apiWsUrl(gateway: ServiceProcess): string {
  return `${gateway.url.replace(/^http/, 'ws')}/api`;
}

/**
 * The services a benchmark run starts: each kept in the run's services and watched
 * (watchService) — its exit fails the run until a clean-up step begins stopping them; from
 * then on exits are expected.
 */
export class RunServices {
  readonly #run: Pick<BenchRun, 'failure' | 'cleanup' | 'services'>;
  #stopping = false;

  constructor(run: Pick<BenchRun, 'failure' | 'cleanup' | 'services'>) {
    this.#run = run;
  }

  /** Watch `svc`: its exit fails the run unless the run is stopping its services. */
  watch(svc: ServiceProcess): void {
    watchService(this.#run, svc, () => this.#stopping);
  }

  /** A clean-up step `what` that stops services with `stop`: exits are expected from then on. */
  stopInCleanup(what: string, stop: () => Promise<unknown>): void {
    this.#run.cleanup.add(what, async () => {
      this.#stopping = true;
      await stop();
    });
  }

  /**
   * Start service `name` with `env` (its process named `label`, by default `name`), stopped by
   * the clean-up step `what`, and watched. It listens; whether it is ready is the caller's to
   * wait for (ServiceProcess.waitReady).
   */
  async start(
    name: ServiceName,
    env: Record<string, string>,
    what: string,
    label?: string,
  ): Promise<ServiceProcess> {
    const svc = await ServiceProcess.start(name, env, label === undefined ? {} : { label });
    this.stopInCleanup(what, async () => {
      await svc.stop();
    });
    this.watch(svc);
    this.#run.failure.check();
    return svc;
  }

  /**
   * startPlatform on `infra`: the services `names` (each ready) under `subjectPrefix`, with
   * `env` on top of the platform's; stopped by the clean-up step `what` (default 'stop the
   * platform'), and each watched, in the order of `names`.
   */
  async startPlatform(
    infra: Infra,
    opts: {
      subjectPrefix: string;
      names: readonly ServiceName[];
      env: Record<string, string>;
      what?: string;
    },
  ): Promise<Platform> {
    const platform = await startPlatform({
      natsUrl: infra.natsUrl,
      subjectPrefix: opts.subjectPrefix,
      pgServerUrl: infra.pgServerUrl,
      names: opts.names,
      env: opts.env,
    });
    this.stopInCleanup(opts.what ?? 'stop the platform', async () => {
      await platform.stop();
    });
    for (const name of opts.names) this.watch(platform.get(name));
    this.#run.failure.check();
    return platform;
  }
}
