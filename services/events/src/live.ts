/**
 * room.live: every ROOM_LIVE_INTERVAL_MS the leader reads every room with members from the
 * rooms service (Rooms.liveRooms, in room id order, pages of 2000 rooms or
 * MEMBER_LIST_MAX_BYTES) and publishes one snapshot per room on `<p>.room.live`; a room too
 * big for one message goes out in parts (see RoomEvents['room.live']). Only the lease holder
 * publishes, so with several replicas each tick goes out once.
 *
 * Memory stays at about two pages whatever the number of rooms: the next page is asked for
 * while one is published, and a page's messages are flushed to the server (its PONG came
 * back) before the page after it is taken on.
 *
 * A tick is some 100,000 messages, so they skip Bus.publish's per-message work (a new
 * traceparent and header set each): one header block for the tick, with the publisher
 * (`sb-caller`) alone, and one UTF-8 encoding for a page's messages. Publishing 100,000
 * rooms so took 0.3–0.45 s of CPU here, through Bus.publish 0.4–0.65 s.
 */
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { Bus } from '@switchboard/bus';
import {
  BusHeaders,
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

/** Rooms a page asks for: the most liveRooms gives, fewest round trips in a tick. */
const PAGE = 2000;
/** A flush that takes longer than this means the connection is not getting anywhere. */
const FLUSH_TIMEOUT_MS = 10_000;

type Page = RpcReply<typeof Rooms.liveRooms>;
type Cursor = NonNullable<Page['next']>;

export class LiveSnapshots {
  readonly #bus: Bus;
  readonly #lease: LeaderLease;
  readonly #intervalMs: number;
  readonly #log: Logger;
  /** `events/<instanceId>`, as the bus names this instance. */
  readonly #caller: string;
  readonly #stopping = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Snapshots published since start, and the rooms in the last one. */
  published = 0;
  lastRooms = 0;

  constructor(bus: Bus, lease: LeaderLease, intervalMs: number, log: Logger, caller: string) {
    this.#bus = bus;
    this.#lease = lease;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'room.live' });
    this.#caller = caller;
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

  /** No more ticks; one under way is cancelled (its request or flush in flight fails). */
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
    const headers = natsHeaders();
    headers.set(BusHeaders.caller, this.#caller);
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
        const events: RoomEvent<'room.live'>[] = [];
        for (const [i, r] of page.rooms.entries()) {
          const continued = i === 0 ? open : undefined;
          const more = i === last && page.next?.afterSocketId !== undefined;
          if (continued === undefined && !more) {
            events.push({ ts, ...r });
          } else {
            const part = (continued?.parts ?? 0) + 1;
            events.push({ ts, ...r, part, more });
            open = more ? { roomId: r.roomId, parts: part } : undefined;
          }
          if (continued === undefined) rooms++;
        }
        publish(nc, subject, headers, events);
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

/** Publish each event as a message, all of them encoded to UTF-8 at once. */
function publish(
  nc: NatsConnection,
  subject: string,
  headers: ReturnType<typeof natsHeaders>,
  events: readonly RoomEvent<'room.live'>[],
): void {
  const json = events.map((e) => JSON.stringify(e));
  const joined = json.join('');
  const bytes = Buffer.from(joined, 'utf8');
  // Only ASCII (nearly always): each message's bytes are as many as its characters.
  const ascii = bytes.length === joined.length;
  const opts = { headers };
  let at = 0;
  for (const j of json) {
    const n = ascii ? j.length : Buffer.byteLength(j, 'utf8');
    nc.publish(subject, bytes.subarray(at, at + n), opts);
    at += n;
  }
}
