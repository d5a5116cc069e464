/**
 * Resident memory of processes from /proc (Linux): VmRSS now and VmHWM (the kernel's record of
 * the largest VmRSS so far), and a sampler that follows the VmRSS of a few processes over a
 * run (the gateways and the rooms service of the signaling benchmarks).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const MIB = 1024;

/** VmRSS and VmHWM (peak) of process `pid`, in MiB to 0.1, from /proc/<pid>/status. */
export function memoryMiB(pid: number | undefined): { rss: number; hwm: number } {
  if (pid === undefined) return { rss: NaN, hwm: NaN };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return {
    rss: Math.round((kb('VmRSS') / MIB) * 10) / 10,
    hwm: Math.round((kb('VmHWM') / MIB) * 10) / 10,
  };
}

function memoryOrNaN(pid: number): { rss: number; hwm: number } {
  try {
    return memoryMiB(pid);
  } catch {
    return { rss: NaN, hwm: NaN }; // exited
  }
}

export interface RssResult {
  /** The largest VmRSS sampled of each process, MiB. */
  peakMiB: Record<string, number>;
  /** VmHWM of each process when sampling stopped: its peak over its whole life, MiB. */
  hwmMiB: Record<string, number>;
  /** VmRSS of each process at each mark, MiB. */
  marks: Record<string, Record<string, number>>;
  samples: number;
  everyMs: number;
  /**
   * The longest time between two samples: the timer runs on the benchmark's event loop,
   * which its clients may keep busy (VmHWM does not depend on it).
   */
  longestGapMs: number;
}

/**
 * The VmRSS of named processes every `everyMs` from construction to `stop()`, with marks (a
 * reading of each at a moment the benchmark names, such as "joined").
 */
export class RssSampler {
  readonly #pids: Record<string, number>;
  readonly #everyMs: number;
  readonly #peak: Record<string, number> = {};
  readonly #marks: Record<string, Record<string, number>> = {};
  readonly #timer: NodeJS.Timeout;
  #samples = 0;
  #last = performance.now();
  #longestGap = 0;
  #result: RssResult | undefined;

  constructor(pids: Record<string, number>, everyMs = 50) {
    this.#pids = pids;
    this.#everyMs = everyMs;
    this.#sample();
    this.#timer = setInterval(() => {
      this.#sample();
    }, everyMs);
    this.#timer.unref();
  }

  /** Read every process now (MiB). */
  read(): Record<string, number> {
    const now: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.#pids)) {
      const rss = memoryOrNaN(pid).rss;
      now[name] = rss;
      if (!Number.isNaN(rss)) this.#peak[name] = Math.max(this.#peak[name] ?? 0, rss);
    }
    return now;
  }

  #sample(): void {
    const t = performance.now();
    if (this.#samples > 0) this.#longestGap = Math.max(this.#longestGap, t - this.#last);
    this.#last = t;
    this.#samples++;
    this.read();
  }

  /** Read every process now, under `label`. */
  mark(label: string): Record<string, number> {
    const now = this.read();
    this.#marks[label] = now;
    return now;
  }

  /** Stop sampling (once; later calls return the same result). */
  stop(): RssResult {
    if (this.#result !== undefined) return this.#result;
    clearInterval(this.#timer);
    this.#sample();
    const hwmMiB: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.#pids)) hwmMiB[name] = memoryOrNaN(pid).hwm;
    this.#result = {
      peakMiB: { ...this.#peak },
      hwmMiB,
      marks: this.#marks,
      samples: this.#samples,
      everyMs: this.#everyMs,
      longestGapMs: Math.round(this.#longestGap),
    };
    return this.#result;
  }
}
