/**
 * What a room Session and a SignalingLink (hosts, callers) share about their lives: one
 * abort signal that ends every wait and timer; sleeps (a backoff, dormancy) that `wake()`
 * cuts short; waits for a connection that any change of state may end; where their errors go.
 */
import { ProtocolError, isProtocolError } from '@switchboard/protocol';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import type { WebSocketFactory, WebSocketLike } from './connection.ts';
import { Emitter } from './emitter.ts';

export const asProtocolError = (err: unknown): ProtocolError =>
  isProtocolError(err) ? err : new ProtocolError('SYSTEM', String(err), { cause: err });

/** The global WebSocket of browsers and Node 22. */
export const defaultWebSocket: WebSocketFactory = (url) => {
  const WS = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (WS === undefined) throw new Error('no global WebSocket: pass options.WebSocket');
  return new WS(url);
};

export interface ErrorInfo {
  error: Error;
  context: string;
}

/** An Emitter's error sink: a listener that threw is reported as such. */
export function listenerErrorsTo(
  reportError: (error: Error, context: string) => void,
): (err: unknown, event: string) => void {
  return (err, event) => {
    reportError(
      err instanceof Error ? err : new Error(String(err)),
      `a listener of ${event} threw`,
    );
  };
}

/**
 * An owner's events (a Session's, a SignalingLink's) and `report`, which routes an error to
 * their `error` event, or to `onError` when nobody listens there. A listener that throws is
 * reported likewise; an `error` listener that throws goes to `onError`.
 */
export function reportingEvents<Events extends { error: ErrorInfo }>(
  onError: (error: Error, context: string) => void,
): { events: Emitter<Events>; report: (error: Error, context: string) => void } {
  const report = (error: Error, context: string): void => {
    if (events.listenerCount('error') > 0) events.emit('error', { error, context });
    else onError(error, context);
  };
  const toReport = listenerErrorsTo(report);
  const events = new Emitter<Events>((err, event) => {
    if (event !== 'error') toReport(err, event);
    else onError(err instanceof Error ? err : new Error(String(err)), 'an error listener threw');
  });
  return { events, report };
}

export class Lifecycle {
  readonly #life = new AbortController();
  /** Wakes the current sleep early. */
  #wake: (() => void) | undefined;
  /** Waits for a connection, woken on each change. */
  readonly #waiters = new Set<() => void>();

  /** Aborted when the owner closes. */
  get signal(): AbortSignal {
    return this.#life.signal;
  }

  /** Whether end() ran (a call, so that awaits in between are not narrowed away). */
  ended(): boolean {
    return this.#life.signal.aborted;
  }

  /** Close: every sleep and wait returns. */
  end(): void {
    this.#life.abort();
    this.changed();
  }

  /** The owner's `signal` option: `close` runs when it aborts (already aborted: ended now). */
  endOn(signal: AbortSignal | undefined, close: () => void): void {
    if (signal === undefined) return;
    if (signal.aborted) this.end();
    signal.addEventListener('abort', close, { once: true, signal: this.#life.signal });
  }

  /** Sleep `ms` (undefined: until woken); wake() and end() cut it short. */
  async sleep(ms: number | undefined): Promise<void> {
    if (this.#life.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#life.signal.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      this.#wake = done;
      this.#life.signal.addEventListener('abort', done, { once: true });
    });
  }

  /** End the current sleep now (activity, the network came back). */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The state changed: every wait in `until` looks again. */
  changed(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * What `ready()` returns once it returns something, looking again at each `changed()`;
   * TIMEOUT at `deadline`, CANCELLED on `signal`, SERVICE_UNAVAILABLE once ended.
   */
  async until<T>(
    ready: () => T | undefined,
    action: string,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<T> {
    for (;;) {
      if (signal?.aborted === true) throw new ProtocolError('CANCELLED', action);
      if (this.ended()) throw new ProtocolError('SERVICE_UNAVAILABLE', `${action}: closed`);
      const value = ready();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new ProtocolError('TIMEOUT', `${action}: not connected in time`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          this.#life.signal.removeEventListener('abort', done);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        signal?.addEventListener('abort', done, { once: true });
        this.#life.signal.addEventListener('abort', done, { once: true });
        this.#waiters.add(done);
      });
    }
  }
}

export interface RetryOptions {
  /** No connection yet: no dormancy, and give up after `firstConnectRetryMs` of failures. */
  first: boolean;
  firstConnectRetryMs: number;
  /** Failing for this long (not the first time) sleeps until woken. */
  dormancyAfterMs: number;
  backoff: BackoffOptions;
  random: () => number;
  /** One try: open a connection and attach on it (throws to retry). */
  attempt(): Promise<void>;
  /** A try failed; the next follows after `retryInMs`. */
  retrying(info: { attempt: number; error: ProtocolError; retryInMs: number }): void;
  /** Dormant, then back to reconnecting when woken. */
  dormant(asleep: boolean): void;
}

/**
 * Try until one attempt succeeds: backoff with jitter between tries, dormancy after failing
 * for long (seed 004), ended by the lifecycle. Throws the last error when the first
 * connection cannot be made in time, a refusal no retry mends (its code's retry class is
 * `never`) at once, CANCELLED once ended.
 */
export async function keepTrying(lc: Lifecycle, opts: RetryOptions): Promise<void> {
  let attempt = 0;
  let failingSince = Date.now();
  let lastError: ProtocolError | undefined;
  for (;;) {
    if (lc.ended()) throw new ProtocolError('CANCELLED', 'closed');
    if (
      opts.first &&
      lastError !== undefined &&
      Date.now() - failingSince >= opts.firstConnectRetryMs
    ) {
      throw lastError;
    }
    if (!opts.first && Date.now() - failingSince >= opts.dormancyAfterMs) {
      opts.dormant(true);
      await lc.sleep(undefined);
      attempt = 0;
      failingSince = Date.now();
      opts.dormant(false);
    }
    try {
      await opts.attempt();
      return;
    } catch (err) {
      const error = asProtocolError(err);
      if (lc.ended()) throw error;
      if (error.retry === 'never') throw error;
      lastError = error;
      const retryInMs = backoffDelay(attempt, opts.backoff, opts.random);
      attempt++;
      opts.retrying({ attempt, error, retryInMs });
      await lc.sleep(retryInMs);
    }
  }
}
