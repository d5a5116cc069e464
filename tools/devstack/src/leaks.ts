/**
 * Processes a run left behind. A run (the test suite) marks its environment with an id of
 * its own (`markRun`); every process started from it inherits the mark — services, their
 * media workers, nats-server and PostgreSQL started for it, browsers — even once re-parented
 * to init when whatever started it died. At its end the run asks which marked processes are
 * still alive (`leftBehind`). A process started with an environment of its own, without
 * `process.env`, carries no mark and is not seen.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const RUN_MARK_ENV = 'SWITCHBOARD_RUN_MARK';

/** Mark this process's environment (inherited by everything it starts from now on). */
export function markRun(): string {
  const mark = randomUUID();
  process.env[RUN_MARK_ENV] = mark;
  return mark;
}

export interface LeftProcess {
  pid: number;
  command: string;
}

/** Live processes (not this one, not zombies) whose environment holds `mark`. */
export function marked(mark: string): LeftProcess[] {
  const needle = Buffer.from(`\0${RUN_MARK_ENV}=${mark}\0`);
  const out: LeftProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${entry}/environ`)]);
      if (!env.includes(needle)) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      out.push({ pid: Number(entry), command: command.slice(0, 300) });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return out;
}

/**
 * Marked processes still alive after `graceMs` (those just exiting get that long), but those
 * `except` keeps. They are killed (SIGKILL) before this returns, so that a failed check
 * leaves nothing either.
 */
export async function leftBehind(
  mark: string,
  graceMs: number,
  except: (p: LeftProcess) => boolean = () => false,
): Promise<LeftProcess[]> {
  const until = Date.now() + graceMs;
  const alive = (): LeftProcess[] => marked(mark).filter((p) => !except(p));
  let left = alive();
  while (left.length > 0 && Date.now() < until) {
    await sleep(250);
    left = alive();
  }
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return left;
}
