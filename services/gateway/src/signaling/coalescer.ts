/**
 * Latest-wins coalescing of a connection's state writes (orientationChange → PostgreSQL):
 * at most one write per `intervalMs`. A change that comes sooner is held — replacing any
 * change held before it — and written when the interval has passed; it is accepted at once.
 * However fast a client sends (within its rate limit), the database sees one write per
 * interval, and the room hears the latest state.
 */
export class Coalescer<T> {
  readonly #intervalMs: number;
  readonly #write: (value: T) => Promise<void>;
  readonly #onDeferredError: (err: unknown) => void;
  #lastAt = -Infinity;
  #running: Promise<void> | undefined;
  #held: { value: T } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    intervalMs: number,
    write: (value: T) => Promise<void>,
    onDeferredError: (err: unknown) => void,
  ) {
    this.#intervalMs = intervalMs;
    this.#write = write;
    this.#onDeferredError = onDeferredError;
  }

  /**
   * Write `value` now if the interval allows (the write's own outcome is returned), else hold
   * it for later (resolves at once).
   */
  async submit(value: T): Promise<void> {
    if (this.#closed) return;
    const wait = this.#lastAt + this.#intervalMs - Date.now();
    if (this.#running === undefined && this.#timer === undefined && wait <= 0) {
      await this.#run(value);
      return;
    }
    this.#held = { value };
    this.#schedule();
  }

  /** Drop what is held; nothing more is written. */
  close(): void {
    this.#closed = true;
    this.#held = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #run(value: T): Promise<void> {
    this.#lastAt = Date.now();
    const p = this.#write(value);
    this.#running = p.then(
      () => undefined,
      () => undefined,
    );
    try {
      await p;
    } finally {
      this.#running = undefined;
      if (this.#held !== undefined) this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#running !== undefined || this.#closed) return;
    const wait = Math.max(0, this.#lastAt + this.#intervalMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const held = this.#held;
      this.#held = undefined;
      if (held === undefined || this.#closed) return;
      this.#run(held.value).catch(this.#onDeferredError);
    }, wait);
  }
}
