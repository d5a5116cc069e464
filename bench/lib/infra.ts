/** The infrastructure and services of a benchmark run. */
import {
  DEV_HS256_SECRET,
  ensureInfra,
  infraFromEnv,
  type Infra,
  type ServiceProcess,
} from '@switchboard/devstack';
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
