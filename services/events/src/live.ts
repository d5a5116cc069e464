/**
 * room.live: every ROOM_LIVE_INTERVAL_MS the leader asks the rooms service for a tick
 * (Rooms.publishLive): a snapshot of every room with members, read in one database snapshot
 * and published by the rooms replica that takes the request, one message per room on
 * `<p>.room.live` (a room too big for one message in parts; see RoomEvents['room.live']).
 * Only the lease holder asks, so with several replicas each tick goes out once.
 *
 * The leader decides when and holds the lease; the rooms service, which owns the membership,
 * reads and publishes it in one pass (services/rooms/src/signaling/live.ts). This service no
 * longer reads pages of 2,000 rooms over NATS to build each message again: that cost some
 * 1 s of its CPU per 100,000 rooms and made a tick 1.6–2.0 s.
 */
import type { BusLike } from '@switchboard/bus';
import { ProtocolError, Rooms } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { LeaderLease } from './lease.ts';

/** The least a tick may take before it is given up (longer intervals give it theirs). */
const MIN_TICK_TIMEOUT_MS = 30_000;

export class LiveSnapshots {
  readonly #bus: BusLike;
  readonly #lease: LeaderLease;
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #stopping = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Snapshots published since start, and the rooms in the last one. */
  published = 0;
  lastRooms = 0;

  constructor(bus: BusLike, lease: LeaderLease, intervalMs: number, log: Logger) {
    this.#bus = bus;
    this.#lease = lease;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'room.live' });
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (!this.#lease.leader || this.#running !== undefined) return;
      this.#running = this.publishAll(this.#stopping.signal)
        .then(() => undefined)
        .catch((err: unknown) => {
          if (this.#stopping.signal.aborted) return; // stopped mid-tick, as asked
          this.#log.warn({ err }, 'publishing room.live failed; next interval tries again');
        })
        .finally(() => {
          this.#running = undefined;
        });
    }, this.#intervalMs);
  }

  /**
   * No more ticks; this service stops waiting for one under way (the rooms replica publishing
   * it finishes it, bounded by the request's deadline).
   */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopping.abort(new ProtocolError('CANCELLED', 'room.live stopping'));
    await this.#running;
  }

  /** One snapshot of every room with members; returns how many rooms. */
  async publishAll(signal?: AbortSignal): Promise<number> {
    const done = await this.#bus.request(
      Rooms.publishLive,
      { ts: Date.now() },
      {
        timeoutMs: Math.max(MIN_TICK_TIMEOUT_MS, this.#intervalMs),
        ...(signal === undefined ? {} : { signal }),
      },
    );
    this.published++;
    this.lastRooms = done.rooms;
    return done.rooms;
  }
}
