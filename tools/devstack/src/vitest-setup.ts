/**
 * Vitest global setup: NATS (with JetStream) and PostgreSQL for the test run, provided to
 * every test file. Reachable servers (NATS_URL / DATABASE_URL, or the local defaults) are
 * used as they are — every test file then works under its own subject prefix and in its
 * own database —; otherwise throw-away servers are started for the run and removed after.
 */
import type { TestProject } from 'vitest/node';
import { ensureInfra } from './infra.ts';
import { withDatabase } from './postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    natsUrl: string;
    pgServerUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const db = process.env['DATABASE_URL'];
  const infra = await ensureInfra({
    natsUrl: process.env['NATS_URL'],
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
  };
}
