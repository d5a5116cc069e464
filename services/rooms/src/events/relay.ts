/**
 * Publishes the outbox to JetStream: each event with `Nats-Msg-Id` = its id (a publish
 * retried after a failure is stored once), marked published only once the stream
 * acknowledged it.
 *
 * Order: a room's events reach the stream in the order of its sequence. Rooms are published
 * in parallel, but within a room each event waits for the previous one's acknowledgement,
 * and a failure stops that room until the next pass — so a partial failure can never let a
 * later event of a room overtake an earlier one. One relay works at a time across rooms
 * replicas: the one holding a session-level advisory lock on its own database connection (a
 * relay that fails gives the lock up, so a replica that can still reach NATS takes over).
 *
 * It runs KICK_DELAY_MS after a membership change committed (kick), every OUTBOX_POLL_MS, and
 * after NATS comes back: nothing written while the stream was unreachable is lost. The delay
 * gathers the events of changes that come together into one pass (one read, one update, the
 * publishes in parallel), and keeps the pass off the path of the request that kicked it: run
 * at once, it took the rooms service and PostgreSQL away from the join's reply (a join alone
 * took 1 ms longer).
 *
 * The stream: created with the subjects and the limits the service has settings for
 * (`EVENTS_STREAM_MAX_AGE_S`, `EVENTS_STREAM_MAX_BYTES`, `EVENTS_DEDUP_WINDOW_S`); on an existing
 * stream only those are changed, and only when they differ — whatever else an operator set
 * (replicas, max_msgs, max_msg_size, placement, …) is kept.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type StreamConfig,
} from '@nats-io/jetstream';
import pg from 'pg';
import type { Bus } from '@switchboard/bus';
import {
  DURABLE_ROOM_EVENTS,
  roomEventStream,
  roomEventSubject,
  type DurableRoomEventName,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

/** pg_advisory_lock key of the relay ("sbOutbox" in ASCII). */
const LOCK_KEY = 0x73624f7574626f78n.toString();
const BATCH = 500;
const PUBLISH_TIMEOUT_MS = 5000;
/** How long after a kick the pass runs (what other changes commit meanwhile joins it). */
const KICK_DELAY_MS = 20;
export interface RelayOptions {
  /** The relay's own connection (it holds the relay's lock for as long as it relays). */
  databaseUrl: string;
  pollMs: number;
  /** How long the stream keeps events (0: for ever). */
  streamMaxAgeMs: number;
  /** The most bytes the stream keeps (the oldest go first; 0: no limit). */
  streamMaxBytes: number;
  /** The stream's de-duplication window (a retried publish within it is stored once). */
  dedupWindowMs: number;
  /** How long published events stay in the outbox table. */
  retentionMs: number;
}

export class OutboxRelay {
  readonly #bus: Bus;
  readonly #opts: RelayOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #wake: (() => void) | undefined;
  #kicked = false;
  #kickTimer: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  #js: JetStreamClient | undefined;
  #published = 0;
  /** The relay's database session, and whether it holds the relay's lock. */
  #client: pg.Client | undefined;
  #leader = false;

  constructor(bus: Bus, opts: RelayOptions, log: Logger) {
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

  /** Something was written: publish soon (KICK_DELAY_MS) rather than at the next poll. */
  kick(): void {
    if (this.#kickTimer !== undefined || this.#stop.signal.aborted) return;
    this.#kickTimer = setTimeout(() => {
      this.#kickTimer = undefined;
      this.#kicked = true;
      this.#wake?.();
    }, KICK_DELAY_MS);
  }

  /** Stop after the pass in progress, trying once more to publish what is left. */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#kickTimer);
    this.#kickTimer = undefined;
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
    await this.#disconnect();
  }

  async #run(): Promise<void> {
    let failures = 0;
    let lastPrune = 0;
    // Not before the bus's first connection: a pass then would only fail (and warn).
    try {
      await this.#bus.whenConnected(this.#stop.signal);
    } catch {
      return; // stopped first
    }
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

  /**
   * Publish one batch, if this replica is the relay; returns how many events it published.
   * Throws when some could not be (those published are marked first).
   */
  async drain(): Promise<number> {
    const js = await this.#jetstream();
    const db = await this.#session();
    if (!this.#leader) {
      const lock = await db.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1::bigint) AS locked',
        [LOCK_KEY],
      );
      if (lock.rows[0]?.locked !== true) return 0;
      this.#leader = true;
      this.#log.info('this replica relays the outbox');
    }
    try {
      return await this.#pass(js, db);
    } catch (err) {
      await this.#resign();
      throw err;
    }
  }

  async #pass(js: JetStreamClient, db: pg.Client): Promise<number> {
    const { rows } = await db.query<{ id: string; roomId: string; type: string; payload: string }>(
      `SELECT id::text AS id, room_id AS "roomId", type, payload::text AS payload
       FROM room_events WHERE published_at IS NULL
       ORDER BY room_id, seq LIMIT ${BATCH}`,
    );
    if (rows.length === 0) return 0;
    const byRoom = new Map<string, typeof rows>();
    for (const r of rows) {
      const events = byRoom.get(r.roomId);
      if (events === undefined) byRoom.set(r.roomId, [r]);
      else events.push(r);
    }
    const prefix = this.#bus.prefix;
    const acked: string[] = [];
    let failure: Error | undefined;
    await Promise.all(
      [...byRoom.values()].map(async (events) => {
        for (const e of events) {
          try {
            await js.publish(roomEventSubject(prefix, e.type as DurableRoomEventName), e.payload, {
              msgID: e.id,
              timeout: PUBLISH_TIMEOUT_MS,
            });
          } catch (err) {
            // The rest of this room waits for the next pass, behind this one.
            failure ??= err instanceof Error ? err : new Error(String(err));
            return;
          }
          acked.push(e.id);
        }
      }),
    );
    if (acked.length > 0) {
      await db.query(
        `UPDATE room_events SET published_at = (now() AT TIME ZONE 'UTC') WHERE id = ANY($1::uuid[])`,
        [acked],
      );
      this.#published += acked.length;
    }
    if (failure !== undefined) throw failure;
    return acked.length;
  }

  /** The relay's database session (connected on first use, again after it failed). */
  async #session(): Promise<pg.Client> {
    if (this.#client !== undefined) return this.#client;
    const client = new pg.Client({
      connectionString: this.#opts.databaseUrl,
      connectionTimeoutMillis: 5000,
      query_timeout: 10_000,
      application_name: 'switchboard-outbox',
    });
    client.on('error', (err) => {
      // The session is gone, and with it the lock: the next pass connects again.
      this.#log.warn({ err }, 'the outbox relay lost its database connection');
      if (this.#client === client) this.#forget();
    });
    await client.connect();
    this.#client = client;
    return client;
  }

  /** Give the relay's lock up (after a failure): a replica that can publish takes over. */
  async #resign(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    try {
      await this.#client?.query('SELECT pg_advisory_unlock($1::bigint)', [LOCK_KEY]);
    } catch (err) {
      // Ending the session releases the lock too.
      this.#log.warn({ err }, 'releasing the outbox lock failed; closing its connection');
      await this.#disconnect();
    }
  }

  #forget(): void {
    this.#client = undefined;
    this.#leader = false;
  }

  async #disconnect(): Promise<void> {
    const client = this.#client;
    this.#forget();
    try {
      await client?.end();
    } catch (err) {
      this.#log.warn({ err }, 'closing the outbox relay connection failed');
    }
  }

  /** The JetStream client, once the stream is known to exist as configured. */
  async #jetstream(): Promise<JetStreamClient> {
    if (this.#js !== undefined) return this.#js;
    const nc = this.#bus.connection;
    if (nc === undefined || !this.#bus.connected) throw new Error('not connected to NATS');
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const prefix = this.#bus.prefix;
    const name = roomEventStream(prefix);
    const managed = {
      max_age: this.#opts.streamMaxAgeMs * 1_000_000,
      max_bytes: this.#opts.streamMaxBytes === 0 ? -1 : this.#opts.streamMaxBytes,
      duplicate_window: this.#opts.dedupWindowMs * 1_000_000,
    };
    const ours = DURABLE_ROOM_EVENTS.map((e) => roomEventSubject(prefix, e));
    let existing: StreamConfig | undefined;
    try {
      existing = (await jsm.streams.info(name)).config;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (existing === undefined) {
      await jsm.streams.add({
        name,
        subjects: ours,
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        ...managed,
      });
      this.#log.info({ stream: name }, 'room events stream created');
    } else {
      const subjects = [...new Set([...existing.subjects, ...ours])];
      const changed =
        subjects.length !== existing.subjects.length ||
        existing.max_age !== managed.max_age ||
        existing.max_bytes !== managed.max_bytes ||
        existing.duplicate_window !== managed.duplicate_window;
      if (changed) {
        // Everything else as the stream has it: an operator's settings stay.
        await jsm.streams.update(name, { ...existing, subjects, ...managed });
        this.#log.info({ stream: name, ...managed }, 'room events stream limits updated');
      }
    }
    this.#js = jetstream(nc, { timeout: 5000 });
    return this.#js;
  }

  async #prune(): Promise<void> {
    const db = await this.#session();
    const res = await db.query(
      `DELETE FROM room_events WHERE published_at IS NOT NULL
         AND published_at < (now() AT TIME ZONE 'UTC') - make_interval(secs => $1::double precision)`,
      [this.#opts.retentionMs / 1000],
    );
    const n = res.rowCount ?? 0;
    if (n > 0) this.#log.debug({ pruned: n }, 'published events pruned from the outbox');
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}
