/**
 * Clients' eventCpu telemetry, written to PostgreSQL in batches: the latest figure of each
 * session is kept in memory and all of them are written in one statement every
 * TELEMETRY_FLUSH_MS. However fast clients send (each within its gateway's rate limit),
 * the database sees at most one write per flush — no client turns its frames into writes.
 */
import type { Logger } from '@switchboard/service';
import type { CpuTelemetry } from '@switchboard/protocol';

export interface CpuSink {
  recordCpu(entries: readonly { socketId: string; cpuUsed: number; at: number }[]): Promise<void>;
}

/** Most sessions held between two flushes; beyond, new ones wait for the next flush. */
const MAX_PENDING = 100_000;

export class CpuRecorder {
  readonly #sink: CpuSink;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #pending = new Map<string, { socketId: string; cpuUsed: number; at: number }>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(sink: CpuSink, intervalMs: number, log: Logger) {
    this.#sink = sink;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'cpu-recorder' });
  }

  /** Keep `t` as its session's latest figure (an older one is replaced). */
  add(t: CpuTelemetry): void {
    const prev = this.#pending.get(t.socketId);
    if (prev === undefined && this.#pending.size >= MAX_PENDING) return;
    if (prev !== undefined && prev.at > t.at) return;
    this.#pending.set(t.socketId, { socketId: t.socketId, cpuUsed: t.cpuUsed, at: t.at });
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#intervalMs);
  }

  /** Write what is pending now (one flush at a time); failures are logged, figures dropped. */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    this.#flushing = this.#sink
      .recordCpu(batch)
      .catch((err: unknown) => {
        // Telemetry is best effort: a database outage loses these figures, nothing else.
        this.#log.warn({ err, sessions: batch.length }, 'cpu telemetry not recorded');
      })
      .finally(() => {
        this.#flushing = undefined;
      });
    await this.#flushing;
  }

  /** Stop the timer and write what is pending. */
  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
