/**
 * room.live: every ROOM_LIVE_INTERVAL_MS the leader reads every room with members from the
 * rooms service (Rooms.liveRooms, in room id order, pages of 1000 rooms or
 * MEMBER_LIST_MAX_BYTES) and publishes one snapshot per room on `<p>.room.live`; a room too
 * big for one message goes out in parts (see RoomEvents['room.live']). Only the lease holder
 * publishes, so with several replicas each tick goes out once.
 *
 * Memory stays at about two pages whatever the number of rooms: the next page is asked for
 * while one is published, and a page's messages are flushed to the server (its PONG came
 * back) before the page after it is taken on.
 */
import type { Bus } from '@switchboard/bus';
import {
  MEMBER_LIST_MAX_BYTES,
  ProtocolError,
  Rooms,
  roomEventSubject,
  type RoomEvent,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { LeaderLease } from './lease.ts';

const PAGE = 1000;
/** A flush that takes longer than this means the connection is not getting anywhere. */
const FLUSH_TIMEOUT_MS = 10_000;

type Page = RpcReply<typeof Rooms.liveRooms>;
type Cursor = NonNullable<Page['next']>;

export class LiveSnapshots {
  readonly #bus: Bus;
  readonly #lease: LeaderLease;
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #stopping = new AbortController();
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

  /** No more ticks; one under way stops after its current page. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopping.abort(new ProtocolError('CANCELLED', 'room.live stopping'));
    await this.#running;
  }

  /**
   * One snapshot of every room with members; returns how many rooms. Stops early (with the
   * rooms so far) when this instance loses the lease.
   */
  async publishAll(signal?: AbortSignal): Promise<number> {
    const nc = this.#bus.connection;
    if (nc === undefined) throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    const subject = roomEventSubject(this.#bus.prefix, 'room.live');
    // Half the server's limit, if it is lower than the default's: headers and envelope fit.
    const maxBytes = Math.min(
      MEMBER_LIST_MAX_BYTES,
      Math.floor((nc.info?.max_payload ?? Infinity) / 2),
    );
    const ts = Date.now();
    const opts = signal === undefined ? {} : { signal };
    const ask = async (next: Cursor | undefined): Promise<Page> => {
      const req: RpcRequest<typeof Rooms.liveRooms> = { limit: PAGE, maxBytes, ...next };
      return await this.#bus.request(Rooms.liveRooms, req, opts);
    };

    let rooms = 0;
    /** The room the last page ended inside, and how many of its parts went out. */
    let open: { roomId: string; parts: number } | undefined;
    let pending: Promise<Page> | undefined = ask(undefined);
    try {
      while (pending !== undefined) {
        const page: Page = await pending;
        // The rooms service reads the next page while this one is published.
        pending = page.next === undefined ? undefined : ask(page.next);
        if (open !== undefined && page.rooms[0]?.roomId !== open.roomId)
          throw new ProtocolError('SYSTEM', `liveRooms did not continue room ${open.roomId}`);
        const last = page.rooms.length - 1;
        for (const [i, r] of page.rooms.entries()) {
          const continued = i === 0 ? open : undefined;
          const more = i === last && page.next?.afterSocketId !== undefined;
          if (continued === undefined && !more) {
            const event: RoomEvent<'room.live'> = { ts, ...r };
            this.#bus.publish(subject, event);
          } else {
            const part = (continued?.parts ?? 0) + 1;
            const event: RoomEvent<'room.live'> = { ts, ...r, part, more };
            this.#bus.publish(subject, event);
            open = more ? { roomId: r.roomId, parts: part } : undefined;
          }
          if (continued === undefined) rooms++;
        }
        await this.#flushed(nc.flush(), signal);
        if (!this.#lease.leader) {
          this.#log.info({ rooms }, 'lost the lease during a tick; its other rooms are skipped');
          break;
        }
      }
    } finally {
      // Stopped early: the page asked for ahead is not wanted, but its failure is still seen.
      void pending?.catch((err: unknown) => {
        this.#log.debug({ err }, 'a liveRooms page asked for ahead failed');
      });
    }
    this.published++;
    this.lastRooms = rooms;
    return rooms;
  }

  /** `flush`, given up on when `signal` aborts or after FLUSH_TIMEOUT_MS. */
  async #flushed(flush: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    const limit = AbortSignal.timeout(FLUSH_TIMEOUT_MS);
    const stop = signal === undefined ? limit : AbortSignal.any([signal, limit]);
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        flush,
        new Promise<never>((_, reject) => {
          onAbort = () => {
            reject(
              signal?.aborted === true
                ? new ProtocolError('CANCELLED')
                : new ProtocolError('TIMEOUT', 'NATS flush'),
            );
          };
          if (stop.aborted) onAbort();
          else stop.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort !== undefined) stop.removeEventListener('abort', onAbort);
      // Given up on: its own failure (the connection closing) is not the tick's.
      flush.catch((err: unknown) => {
        this.#log.debug({ err }, 'a NATS flush given up on failed');
      });
    }
  }
}
