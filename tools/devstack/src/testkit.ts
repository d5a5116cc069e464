/** Helpers for tests that run against the real NATS and PostgreSQL. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS_DIR } from './paths.ts';
import { createDatabase, dropDatabase } from './postgres.ts';

/** A subject prefix no other test (or run) uses. */
export function uniquePrefix(tag = 't'): string {
  return `${tag}_${randomBytes(5).toString('hex')}`;
}

/** A fresh database on the test server; `drop()` removes it. */
export async function testDatabase(
  pgServerUrl: string,
  tag = 'sbtest',
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${tag}_${randomBytes(5).toString('hex')}`;
  const url = await createDatabase(pgServerUrl, name);
  return {
    name,
    url,
    drop: async () => {
      await dropDatabase(pgServerUrl, name);
    },
  };
}

/** A directory for this test's artifacts (screenshots, logs), created. */
export function artifactDir(...parts: string[]): string {
  const dir = join(ARTIFACTS_DIR, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}
