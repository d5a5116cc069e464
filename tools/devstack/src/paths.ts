import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = resolve(fileURLToPath(new URL('../../../', import.meta.url)));

/** Project-owned state of this clone (NATS data, logs, a dev PostgreSQL when not root). */
export const STATE_DIR = process.env['SWITCHBOARD_STATE_DIR'] ?? join(ROOT, '.local');

/** Per-machine cache outside the clone (mediasoup worker, pnpm). */
export const CACHE_DIR =
  process.env['SWITCHBOARD_CACHE'] ??
  join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'switchboard');

/** Test artifacts (screenshots, logs of failed runs, benchmark results). */
export const ARTIFACTS_DIR = process.env['SWITCHBOARD_ARTIFACTS'] ?? join(ROOT, 'artifacts');
