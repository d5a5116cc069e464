/**
 * Tells the rooms service which producers began and ended on this node (`Rooms.tracks`), in
 * the order they did: one batch in flight at a time, a failed batch retried (with backoff)
 * before anything after it. The rooms service applies each change once, so a batch sent
 * twice changes nothing. Off the media path: a produce never waits for it.
 */
import type { BusLike } from '@switchboard/bus';
import { Rooms, type TrackChange } from '@switchboard/protocol';
import { sleep, type Logger } from '@switchboard/service';

const BATCH = 256;
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;
/** Changes kept while the rooms service cannot be reached; beyond it new ones are dropped. */
const MAX_QUEUED = 100_000;

export class TrackReporter {
  readonly #bus: BusLike;
  readonly #nodeId: string;
  readonly #log: Logger;
  readonly #queue: TrackChange[] = [];
  readonly #stop = new AbortController();
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** Changes dropped because the queue was full (the rooms service away for long). */
  dropped = 0;

  constructor(bus: BusLike, nodeId: string, log: Logger) {
    this.#bus = bus;
    this.#nodeId = nodeId;
    this.#log = log.child({ component: 'track-reporter' });
  }

  start(): void {
    this.#loop = this.#run();
  }

  report(change: TrackChange): void {
    if (this.#queue.length >= MAX_QUEUED) {
      // (The newest, not the oldest: the batch in flight is the queue's head.)
      if (this.dropped++ === 0) this.#log.error('track change queue full; dropping changes');
      return;
    }
    this.#queue.push(change);
    this.#wake?.();
  }

  /** Send what is queued (until `signal`), then stop. */
  async stop(signal: AbortSignal): Promise<void> {
    while (this.#queue.length > 0 && !signal.aborted) await sleep(20, signal);
    this.#stop.abort();
    this.#wake?.();
    await this.#loop;
    if (this.#queue.length > 0) {
      this.#log.warn({ changes: this.#queue.length }, 'track changes not reported at shutdown');
    }
  }

  async #run(): Promise<void> {
    let delay = RETRY_MIN_MS;
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      if (this.#queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        continue;
      }
      const batch = this.#queue.slice(0, BATCH);
      try {
        await this.#bus.request(
          Rooms.tracks,
          { nodeId: this.#nodeId, changes: batch },
          { signal: stop },
        );
        // Only now: what came in meanwhile stays queued after it.
        this.#queue.splice(0, batch.length);
        delay = RETRY_MIN_MS;
      } catch (err) {
        if (this.#stop.signal.aborted) break;
        this.#log.warn({ err, changes: batch.length }, 'reporting track changes failed; retrying');
        await sleep(delay, stop);
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
  }
}
