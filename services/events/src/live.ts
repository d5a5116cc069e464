/**
 * room.live: every ROOM_LIVE_INTERVAL_MS the leader reads every room with members from the
 * rooms service (pages of 1000, in room id order) and publishes one snapshot per room on
 * `<p>.room.live`. Only the lease holder publishes, so with several replicas each tick goes
 * out once.
 */
import type { Bus } from '@switchboard/bus';
import { Rooms, roomEventSubject, type RoomEvent } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { LeaderLease } from './lease.ts';

const PAGE = 1000;

export class LiveSnapshots {
  readonly #bus: Bus;
  readonly #lease: LeaderLease;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Snapshots published since start, and the rooms in the last one. */
  published = 0;
  lastRooms = 0;

  constructor(bus: Bus, lease: LeaderLease, intervalMs: number, log: Logger) {
    this.#bus = bus;
    this.#lease = lease;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'room.live' });
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (!this.#lease.leader || this.#running !== undefined) return;
      this.#running = this.publishAll()
        .then(() => undefined)
        .catch((err: unknown) => {
          this.#log.warn({ err }, 'publishing room.live failed; next interval tries again');
        })
        .finally(() => {
          this.#running = undefined;
        });
    }, this.#intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One snapshot of every room with members; returns how many rooms. */
  async publishAll(signal?: AbortSignal): Promise<number> {
    const subject = roomEventSubject(this.#bus.prefix, 'room.live');
    let after: string | undefined;
    let rooms = 0;
    for (;;) {
      const page = await this.#bus.request(
        Rooms.liveRooms,
        { limit: PAGE, ...(after === undefined ? {} : { after }) },
        signal === undefined ? {} : { signal },
      );
      const ts = Date.now();
      for (const r of page.rooms) {
        const event: RoomEvent<'room.live'> = { ts, ...r };
        this.#bus.publish(subject, event);
      }
      rooms += page.rooms.length;
      after = page.rooms.at(-1)?.roomId;
      if (page.rooms.length < PAGE || after === undefined) break;
    }
    this.published++;
    this.lastRooms = rooms;
    return rooms;
  }
}
