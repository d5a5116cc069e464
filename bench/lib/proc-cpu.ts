/**
 * CPU time of processes from /proc (Linux): read at once, without asking the process (a busy
 * mediasoup worker answers a getResourceUsage() request late), and for processes the
 * benchmark did not start itself, such as a media service's node process and its workers.
 * All threads are included; children that have exited are not.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 nearly everywhere). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User and system CPU time of process `pid` so far, in ms (resolution 1/CLK_TCK s). */
export function procCpuMs(pid: number): { userMs: number; systemMs: number; totalMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After comm: state is field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error(`/proc/${pid}/stat: cannot parse ${JSON.stringify(stat.slice(0, 200))}`);
  const ms = 1000 / clockTicksPerSecond();
  return { userMs: utime * ms, systemMs: stime * ms, totalMs: (utime + stime) * ms };
}

/**
 * CPU time of process `pid` so far, in ms, to the ns: the scheduler's run time of each of its
 * threads (/proc/<pid>/task/<tid>/schedstat, user and system together). Finer than
 * /proc/<pid>/stat's clock ticks (10 ms, which over a 5 s window is 0.2% of a core), which it
 * falls back to where schedstat is missing.
 */
export function procRunTimeMs(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return procCpuMs(pid).totalMs;
  }
  let ns = 0;
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tids.length > 1) continue; // exited
      return procCpuMs(pid).totalMs;
    }
    const run = Number(text.split(' ')[0]);
    if (!Number.isFinite(run)) return procCpuMs(pid).totalMs;
    ns += run;
  }
  return ns / 1e6;
}

/** Busy CPU time of the whole machine, summed over cores, in ms (from os.cpus()). */
export function machineCpuMs(): { busyMs: number; totalMs: number; cores: number } {
  let busyMs = 0;
  let totalMs = 0;
  const cpus = os.cpus();
  for (const c of cpus) {
    const t = c.times;
    busyMs += t.user + t.nice + t.sys + t.irq;
    totalMs += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busyMs, totalMs, cores: cpus.length };
}

/** The pids of every process whose name (/proc/<pid>/comm) is `comm`. */
export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * CPU time used by groups of processes over a window: `start()` notes each group's
 * processes' run time, and the function it returns gives each group's CPU ms since (a
 * process that appeared meanwhile counts whole; one that exited meanwhile is left out).
 * Groups are asked for their pids at both ends: servers that fork per connection
 * (PostgreSQL) are found by name each time.
 */
export class CpuMeter {
  readonly #groups: Record<string, () => readonly number[]>;

  constructor(groups: Record<string, () => readonly number[]>) {
    this.#groups = groups;
  }

  start(): () => Record<string, number> {
    const before = new Map<number, number>();
    for (const pids of Object.values(this.#groups))
      for (const pid of pids()) before.set(pid, runTimeOrNaN(pid));
    return () => {
      const used: Record<string, number> = {};
      for (const [name, pids] of Object.entries(this.#groups)) {
        let ms = 0;
        for (const pid of pids()) {
          const now = runTimeOrNaN(pid);
          if (Number.isNaN(now)) continue;
          const then = before.get(pid) ?? 0;
          if (!Number.isNaN(then)) ms += now - then;
        }
        used[name] = ms;
      }
      return used;
    };
  }
}

function runTimeOrNaN(pid: number): number {
  try {
    return procRunTimeMs(pid);
  } catch {
    return NaN;
  }
}
