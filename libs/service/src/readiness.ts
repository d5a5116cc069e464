/**
 * Readiness: a named set of checks over the service's dependencies (NATS, PostgreSQL,
 * mediasoup workers, ...). `/readyz` answers 200 only while every check passes and the
 * service is not draining.
 */
import type { ReadinessResponse } from '@switchboard/protocol';

export type Check = () => boolean | Promise<boolean>;

export interface ReadinessReport {
  ready: boolean;
  draining: boolean;
  checks: ReadinessResponse['checks'];
}

const CHECK_TIMEOUT_MS = 2000;

export class Readiness {
  readonly #checks = new Map<string, Check>();
  readonly #last = new Map<string, boolean>();
  #draining = false;

  /** Register a dependency check. Names are unique per service. */
  add(name: string, check: Check): void {
    if (this.#checks.has(name)) throw new Error(`readiness check ${name} registered twice`);
    this.#checks.set(name, check);
  }

  /** From now on the service reports not ready (graceful shutdown has begun). */
  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The last known result of every check (for metrics; no I/O). */
  lastResults(): ReadonlyMap<string, boolean> {
    return this.#last;
  }

  async evaluate(): Promise<ReadinessReport> {
    const checks: ReadinessResponse['checks'] = {};
    await Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        let ok: boolean;
        try {
          ok = await withTimeout(Promise.resolve(check()), CHECK_TIMEOUT_MS);
        } catch {
          // A check that throws or hangs is, by definition, a failing dependency; the
          // report below says which one.
          ok = false;
        }
        this.#last.set(name, ok);
        checks[name] = ok ? 'ok' : 'failing';
      }),
    );
    const ready = !this.#draining && Object.values(checks).every((c) => c === 'ok');
    return { ready, draining: this.#draining, checks };
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`timed out after ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
