/**
 * Messages received on a stream, read as an async iterator. It ends when the sender is done
 * (`close()`) or with the stream's error (`close(err)`): the reader sees every message that
 * arrived before either, then the end or the error.
 */
export class MessageQueue<T> {
  readonly #items: { value: T; bytes: number }[] = [];
  readonly #limit: number;
  #bytes = 0;
  #waiting: { resolve: (r: IteratorResult<T>) => void; reject: (err: Error) => void } | undefined;
  #closed = false;
  #error: Error | undefined = undefined;
  #iterated = false;

  readonly #onTake: (bytes: number, left: number) => void;

  /**
   * `limitBytes`: most bytes of messages kept unread (see push). `onTake`: the reader took a
   * message of `bytes`, `left` are still queued (flow control acknowledges it).
   */
  constructor(
    limitBytes = Number.POSITIVE_INFINITY,
    onTake: (bytes: number, left: number) => void = () => undefined,
  ) {
    this.#limit = limitBytes;
    this.#onTake = onTake;
  }

  get length(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queue a message of `bytes` (its size on the wire). false: the unread messages would
   * exceed the limit (a reader that stopped reading, or a sender that ignores it): not queued.
   */
  push(value: T, bytes = 0): boolean {
    if (this.#closed) return true;
    const w = this.#waiting;
    if (w !== undefined) {
      this.#waiting = undefined;
      w.resolve({ done: false, value });
      this.#onTake(bytes, 0);
      return true;
    }
    if (this.#bytes + bytes > this.#limit) return false;
    this.#bytes += bytes;
    this.#items.push({ value, bytes });
    return true;
  }

  /** No more messages; with `err`, the reader gets it after the messages already queued. */
  close(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = err;
    const w = this.#waiting;
    this.#waiting = undefined;
    if (w === undefined) return;
    if (err === undefined) w.resolve({ done: true, value: undefined });
    else w.reject(err);
  }

  /** Drop what is queued (the reader stopped reading). */
  clear(): void {
    this.#items.length = 0;
    this.#bytes = 0;
  }

  async next(): Promise<IteratorResult<T>> {
    const item = this.#items.shift();
    if (item !== undefined) {
      this.#bytes -= item.bytes;
      this.#onTake(item.bytes, this.#items.length);
      return { done: false, value: item.value };
    }
    if (this.#closed) {
      if (this.#error !== undefined) throw this.#error;
      return { done: true, value: undefined };
    }
    if (this.#waiting !== undefined) throw new Error('one reader at a time');
    return await new Promise<IteratorResult<T>>((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /**
   * The one iterator of this queue. `onReturn` runs when the reader stops early (break,
   * throw): the stream uses it to cancel what nobody reads any more.
   */
  iterator(onReturn: () => void): AsyncIterableIterator<T> {
    if (this.#iterated) throw new Error('a stream can be read once');
    this.#iterated = true;
    const it: AsyncIterableIterator<T> = {
      next: async () => await this.next(),
      return: async () => {
        this.clear();
        onReturn();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}
