/** What every benchmark script shares: its log, usage errors, and the revision it ran. */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ROOT } from '@switchboard/devstack';

/** A bad command line: printed with the usage, exit 2. */
export class UsageError extends Error {}

const started = performance.now();

/** A progress line on stderr, stamped with the seconds since the script started. */
export function log(msg: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The commit measured (and whether the tree had changes), for the JSON results. */
export function gitRevision(): string | undefined {
  try {
    const rev = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' });
    return dirty.trim() === '' ? rev : `${rev} (with uncommitted changes)`;
  } catch {
    return undefined;
  }
}
