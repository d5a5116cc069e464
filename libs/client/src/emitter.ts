/**
 * Typed events, as listeners and as async iterators. A listener that throws (or returns a
 * promise that rejects) does not stop the others: its error goes to the emitter's error sink,
 * so no error is ever lost and none escapes as an unhandled rejection.
 */
export type Listener<T> = (value: T) => void | Promise<void>;

export interface IterateOptions {
  /** Ends the iteration (the loop exits normally). */
  signal?: AbortSignal;
  /**
   * Values kept for a consumer slower than the events; past it the oldest are dropped and
   * the error sink is told (default 1000).
   */
  bufferSize?: number;
}

export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();
  readonly #onError: (err: unknown, event: string) => void;

  constructor(onError: (err: unknown, event: string) => void) {
    this.#onError = onError;
  }

  /** Listen to `event`; returns the function that stops listening. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** The next `event`, as a promise (rejects with the signal's reason on abort). */
  async once<K extends keyof Events>(event: K, signal?: AbortSignal): Promise<Events[K]> {
    signal?.throwIfAborted();
    return await new Promise<Events[K]>((resolve, reject) => {
      const onAbort = (): void => {
        off();
        reject(signal?.reason as Error);
      };
      const off = this.on(event, (v) => {
        off();
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        const r = (listener as Listener<Events[K]>)(value);
        if (r instanceof Promise) {
          r.catch((err: unknown) => {
            this.#onError(err, String(event));
          });
        }
      } catch (err) {
        this.#onError(err, String(event));
      }
    }
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** `event` as an async iterator: `for await (const e of emitter.iterate('x')) …`. */
  iterate<K extends keyof Events>(
    event: K,
    opts: IterateOptions = {},
  ): AsyncIterableIterator<Events[K]> {
    const max = opts.bufferSize ?? 1000;
    const buffer: Events[K][] = [];
    let waiting: ((r: IteratorResult<Events[K]>) => void) | undefined;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      off();
      opts.signal?.removeEventListener('abort', finish);
      const w = waiting;
      waiting = undefined;
      w?.({ done: true, value: undefined });
    };
    const off = this.on(event, (value) => {
      if (waiting !== undefined) {
        const w = waiting;
        waiting = undefined;
        w({ done: false, value });
        return;
      }
      buffer.push(value);
      if (buffer.length > max) {
        buffer.shift();
        this.#onError(
          new Error(`${String(event)}: iterator fell ${String(max)} events behind; oldest dropped`),
          String(event),
        );
      }
    });
    if (opts.signal?.aborted === true) finish();
    opts.signal?.addEventListener('abort', finish, { once: true });
    const it: AsyncIterableIterator<Events[K]> = {
      next: async () => {
        if (buffer.length > 0) return { done: false, value: buffer.shift() as Events[K] };
        if (done) return { done: true, value: undefined };
        return await new Promise<IteratorResult<Events[K]>>((resolve) => {
          waiting = resolve;
        });
      },
      return: async () => {
        finish();
        buffer.length = 0;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}
