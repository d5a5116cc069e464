/**
 * How often each user creates receiving transports in each room, on this node. A receiving
 * transport makes the node create a consumer of every producer in the room, so a client that
 * loops (create, rejoin, create…) costs the whole room; beyond `perMinute` in the last minute
 * the next one is RATE_LIMITED. Kept per node, not per room object: the room may close when
 * its last member leaves and be created again by the next join.
 */
import { ProtocolError } from '@switchboard/protocol';

const WINDOW_MS = 60_000;
/** Keys kept before a sweep of the stale ones. */
const SWEEP_AT = 10_000;

export class RecvChurn {
  readonly #perMinute: number;
  readonly #created = new Map<string, number[]>();

  constructor(perMinute: number) {
    this.#perMinute = perMinute;
  }

  /** Count a new receiving transport of `userId` in `roomId`, or throw RATE_LIMITED. */
  take(roomId: string, userId: string, now = Date.now()): void {
    if (this.#created.size >= SWEEP_AT) this.#sweep(now);
    const key = `${roomId}\n${userId}`;
    const recent = (this.#created.get(key) ?? []).filter((t) => now - t < WINDOW_MS);
    if (recent.length >= this.#perMinute) {
      this.#created.set(key, recent);
      throw new ProtocolError('RATE_LIMITED', 'receiving transports created too often');
    }
    recent.push(now);
    this.#created.set(key, recent);
  }

  #sweep(now: number): void {
    for (const [key, times] of this.#created) {
      if (times.every((t) => now - t >= WINDOW_MS)) this.#created.delete(key);
    }
  }
}
