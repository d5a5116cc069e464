/**
 * Vitest global setup: NATS (with JetStream) and PostgreSQL for the test run, provided to
 * every test file. NATS is the run's own nats-server with the bus identities (auth on;
 * SWITCHBOARD_NATS_AUTH_DIR tells workers and services where the credentials are), unless
 * NATS_URL comes with SWITCHBOARD_NATS_AUTH_DIR. A reachable PostgreSQL (DATABASE_URL, or the
 * local default) is used as it is; otherwise a throw-away cluster is started. Every test file
 * works under its own subject prefix and in its own database.
 *
 * The run leaves no process behind: everything started from it carries its mark (leaks.ts),
 * and once the test files and the infrastructure are done, a marked process still alive fails
 * the run (and is killed), named with its command line.
 */
import type { TestProject } from 'vitest/node';
import { ensureInfra } from './infra.ts';
import { leftBehind, markRun } from './leaks.ts';
import { withDatabase } from './postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    natsUrl: string;
    pgServerUrl: string;
  }
}

const VITEST_OWN = /^vitest-|\/vitest\/dist\//;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const mark = markRun();
  const db = process.env['DATABASE_URL'];
  const infra = await ensureInfra({
    natsUrl: process.env['NATS_URL'],
    natsAuthDir: process.env['SWITCHBOARD_NATS_AUTH_DIR'],
    pgServerUrl: db === undefined || db === '' ? undefined : withDatabase(db, 'postgres'),
    ephemeral: true,
    log: (msg) => {
      process.stdout.write(`[infra] ${msg}\n`);
    },
  });
  project.provide('natsUrl', infra.natsUrl);
  project.provide('pgServerUrl', infra.pgServerUrl);
  return async () => {
    await infra.stop();
    // Vitest's own helpers (its watchdog, a worker still closing) are not the tests'.
    const left = await leftBehind(mark, 10_000, (p) => VITEST_OWN.test(p.command));
    if (left.length > 0) {
      throw new Error(
        `the test run left ${left.length} process(es) running (killed now):\n` +
          left.map((p) => `  ${p.pid} ${p.command}`).join('\n'),
      );
    }
  };
}
