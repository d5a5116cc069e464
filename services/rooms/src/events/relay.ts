/**
 * Publishes the outbox to JetStream: events in the order of each room's sequence, each with
 * `Nats-Msg-Id` = its id (a publish retried after a failure is stored once), marked published
 * only once the stream acknowledged it. One relay works at a time across rooms replicas (a
 * transaction-scoped advisory lock), so a room's events never overtake each other.
 *
 * It runs when a membership change committed (kick) and every OUTBOX_POLL_MS, and after NATS
 * comes back: nothing written while the stream was unreachable is lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
} from '@nats-io/jetstream';
import type { Bus } from '@switchboard/bus';
import {
  DURABLE_ROOM_EVENTS,
  roomEventStream,
  roomEventSubject,
  type DurableRoomEventName,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { Db } from '../db/client.ts';

/** pg_advisory_xact_lock key of the relay ("sbOutbox" in ASCII). */
const LOCK_KEY = 0x73624f7574626f78n;
const BATCH = 500;
export interface RelayOptions {
  pollMs: number;
  /** How long the stream keeps events (0: for ever). */
  streamMaxAgeMs: number;
  /** The stream's de-duplication window (a retried publish within it is stored once). */
  dedupWindowMs: number;
  /** How long published events stay in the outbox table. */
  retentionMs: number;
}

export class OutboxRelay {
  readonly #db: Db;
  readonly #bus: Bus;
  readonly #opts: RelayOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #wake: (() => void) | undefined;
  #kicked = false;
  #loop: Promise<void> | undefined;
  #js: JetStreamClient | undefined;
  #published = 0;

  constructor(db: Db, bus: Bus, opts: RelayOptions, log: Logger) {
    this.#db = db;
    this.#bus = bus;
    this.#opts = opts;
    this.#log = log.child({ component: 'outbox' });
  }

  /** Events published since start. */
  get published(): number {
    return this.#published;
  }

  start(): void {
    this.#bus.onReconnect(() => {
      this.#js = undefined; // the stream is checked again
      this.kick();
    });
    this.#loop ??= this.#run();
  }

  /** Something was written: publish now rather than at the next poll. */
  kick(): void {
    this.#kicked = true;
    this.#wake?.();
  }

  /** Stop after the pass in progress, trying once more to publish what is left. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake?.();
    await this.#loop;
    try {
      await this.drain();
    } catch (err) {
      this.#log.warn(
        { err },
        'last outbox pass failed; another replica or the next start publishes it',
      );
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    let lastPrune = 0;
    while (!this.#stop.signal.aborted) {
      this.#kicked = false;
      try {
        // A full batch: more is waiting.
        while ((await this.drain()) === BATCH && !this.#stopping());
        if (failures > 0) this.#log.info({ failures }, 'outbox publishing again');
        failures = 0;
        if (Date.now() - lastPrune > 60_000) {
          lastPrune = Date.now();
          await this.#prune();
        }
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 30 === 0) {
          this.#log.warn({ err, failures }, 'publishing the outbox failed; retrying');
        }
      }
      if (this.#wasKicked()) continue;
      const wait = failures === 0 ? this.#opts.pollMs : Math.min(5000, 100 * 2 ** failures);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        sleep(wait, undefined, { signal: this.#stop.signal }).then(
          () => {
            resolve();
          },
          () => {
            resolve();
          },
        );
      });
      this.#wake = undefined;
    }
  }

  /** Methods, not property reads, so narrowing across awaits cannot fool the checker. */
  #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  #wasKicked(): boolean {
    return this.#kicked;
  }

  /** Publish one batch; returns how many events it published. */
  async drain(): Promise<number> {
    const js = await this.#jetstream();
    return await this.#db.$transaction(
      async (tx) => {
        const lock = await tx.$queryRaw<{ locked: boolean }[]>`
          SELECT pg_try_advisory_xact_lock(${LOCK_KEY}) AS locked`;
        if (lock[0]?.locked !== true) return 0;
        const rows = await tx.$queryRaw<{ id: string; type: string; payload: unknown }[]>`
          SELECT id::text AS id, type, payload FROM room_events
          WHERE published_at IS NULL
          ORDER BY room_id, seq
          LIMIT ${BATCH}`;
        if (rows.length === 0) return 0;
        const prefix = this.#bus.prefix;
        // Sent in order on one connection: the stream stores them in that order.
        await Promise.all(
          rows.map(async (r) => {
            await js.publish(
              roomEventSubject(prefix, r.type as DurableRoomEventName),
              JSON.stringify(r.payload),
              { msgID: r.id, timeout: 5000 },
            );
          }),
        );
        const ids = rows.map((r) => r.id);
        await tx.$executeRaw`
          UPDATE room_events SET published_at = (now() AT TIME ZONE 'UTC')
          WHERE id = ANY(${ids}::uuid[])`;
        this.#published += rows.length;
        return rows.length;
      },
      { timeout: 30_000, maxWait: 10_000 },
    );
  }

  /** The JetStream client, once the stream is known to exist as configured. */
  async #jetstream(): Promise<JetStreamClient> {
    if (this.#js !== undefined) return this.#js;
    const nc = this.#bus.connection;
    if (nc === undefined || !this.#bus.connected) throw new Error('not connected to NATS');
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const prefix = this.#bus.prefix;
    const name = roomEventStream(prefix);
    const config = {
      name,
      subjects: DURABLE_ROOM_EVENTS.map((e) => roomEventSubject(prefix, e)),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: this.#opts.streamMaxAgeMs * 1_000_000,
      duplicate_window: this.#opts.dedupWindowMs * 1_000_000,
    };
    try {
      await jsm.streams.info(name);
      await jsm.streams.update(name, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(config);
      this.#log.info({ stream: name }, 'room events stream created');
    }
    this.#js = jetstream(nc, { timeout: 5000 });
    return this.#js;
  }

  async #prune(): Promise<void> {
    const n = await this.#db.$executeRaw`
      DELETE FROM room_events WHERE published_at IS NOT NULL
        AND published_at < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${this.#opts.retentionMs / 1000})`;
    if (n > 0) this.#log.debug({ pruned: n }, 'published events pruned from the outbox');
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}
