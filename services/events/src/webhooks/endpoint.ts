/**
 * One endpoint's delivery while this instance leads: its durable consumer
 * (`webhook_<hash>`) on the room-events stream, pulled into a RoomScheduler.
 *
 * The consumer is created on first use with deliver policy `new` (an endpoint gets the
 * events from when it was configured), explicit acks, `ack_wait` of twice the timeout plus
 * 5 s (kept alive while an event is retried) and `max_ack_pending` of 16 × the rooms in
 * flight (256 to 20,000): the window of events this instance holds at once.
 *
 * Order across leaders: a leader that dies leaves its deliveries unacked; the server gives
 * them out again only after ack_wait, possibly after later events of the same rooms. So a
 * new leader first holds what it pulls, until the consumer's outstanding deliveries are all
 * its own (`num_ack_pending` ≤ what it holds; at the latest after ack_wait), and only then
 * delivers, each room's queue in stream order. A leader that stops gracefully lets its last
 * short pull end, then naks what it holds, so the next one starts at once. An event a leader POSTed but could not ack before
 * it died is POSTed again by the next one: the same id and body (at least once).
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type Consumer,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Bus } from '@switchboard/bus';
import { roomEventStream } from '@switchboard/protocol';
import { sleep, type Logger } from '@switchboard/service';
import { ReadFailures } from '../read-failures.ts';
import type { WebhookMetrics } from './metrics.ts';
import type { ParkingLot } from './parking.ts';
import { RoomScheduler } from './room-scheduler.ts';
import type { WebhookSender } from './sender.ts';
import type { WebhookEndpoint, WebhookSettings } from './settings.ts';

const NS_PER_MS = 1_000_000;
const API_TIMEOUT_MS = 5000;
/** How often a new leader checks whether earlier deliveries have all come back. */
const SETTLE_POLL_MS = 200;
/** How long one pull request waits for messages (the shortest nats.js allows). */
const FETCH_EXPIRES_MS = 1000;

export interface EndpointDeps {
  readonly bus: Bus;
  readonly settings: WebhookSettings;
  readonly sender: WebhookSender;
  readonly parking: ParkingLot;
  readonly metrics: WebhookMetrics;
  readonly log: Logger;
}

/** The consumer's ack_wait: comfortably above one attempt. */
export function webhookAckWaitMs(s: Pick<WebhookSettings, 'timeoutMs'>): number {
  return 2 * s.timeoutMs + 5000;
}

/** The consumer's max_ack_pending: the events held at once. */
export function webhookMaxAckPending(s: Pick<WebhookSettings, 'maxInFlight'>): number {
  return Math.min(20_000, Math.max(256, 16 * s.maxInFlight));
}

export class EndpointWorker {
  readonly endpoint: WebhookEndpoint;
  readonly #d: EndpointDeps;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #graceMs = 0;
  #loop: Promise<void> | undefined;
  #consumer: Consumer | undefined;

  constructor(endpoint: WebhookEndpoint, deps: EndpointDeps) {
    this.endpoint = endpoint;
    this.#d = deps;
    this.#log = deps.log.child({ endpoint: endpoint.hash });
  }

  start(): void {
    this.#loop = this.#run().catch((err: unknown) => {
      this.#log.error({ err }, 'webhook endpoint stopped');
    });
  }

  /** Stop pulling; deliveries in flight get `graceMs`, then everything held is nak'ed. */
  async stop(graceMs: number): Promise<void> {
    this.#graceMs = graceMs;
    this.#stop.abort();
    await this.#loop;
  }

  /** The events not delivered yet: the consumer's backlog and those delivered, not acked. */
  async pending(): Promise<number | undefined> {
    const consumer = this.#consumer;
    if (consumer === undefined) return undefined;
    const info = await consumer.info(false);
    return info.num_pending + info.num_ack_pending;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    // A function: the signal changes under the awaits (lint cannot see that).
    const stopped = (): boolean => signal.aborted;
    let failures = 0;
    const failed = new ReadFailures(this.#log, 'webhook endpoint');
    while (!signal.aborted) {
      // One session: a consumer pulled into one scheduler, until stopped or it fails.
      const session = new AbortController();
      const ended = AbortSignal.any([signal, session.signal]);
      let scheduler: RoomScheduler | undefined;
      let settling: Promise<void> | undefined;
      // Stopping: no new attempt from now on; what is held goes back once the pull is over.
      const halt = (): void => {
        scheduler?.halt();
      };
      signal.addEventListener('abort', halt, { once: true });
      try {
        await this.#d.bus.whenConnected(signal);
        const nc = this.#d.bus.connection;
        if (nc === undefined) throw new Error('no NATS connection');
        await this.#ensureConsumer(nc);
        const consumer = await jetstream(nc, { timeout: API_TIMEOUT_MS }).consumers.get(
          roomEventStream(this.#d.bus.prefix),
          this.endpoint.consumer,
        );
        if (stopped()) break;
        this.#consumer = consumer;
        const s = new RoomScheduler({
          endpoint: this.endpoint,
          settings: this.#d.settings,
          sender: this.#d.sender,
          parking: this.#d.parking,
          metrics: this.#d.metrics,
          nc,
          prefix: this.#d.bus.prefix,
          ackWaitMs: webhookAckWaitMs(this.#d.settings),
          log: this.#log,
        });
        scheduler = s;
        settling = this.#settle(consumer, s, ended);
        failures = 0;
        failed.reading();
        // Short pulls, each run to its end: when this stops, no pull request of this
        // instance is left open on the server, so the messages it then gives back (nak) go
        // to the next leader at once — not into a pull nobody reads, for ack_wait.
        while (!stopped()) {
          const batch = await consumer.fetch({
            max_messages: Math.min(256, webhookMaxAckPending(this.#d.settings)),
            expires: FETCH_EXPIRES_MS,
          });
          for await (const m of batch) s.add(m);
        }
      } catch (err) {
        if (!stopped()) {
          failures++;
          failed.failed(err);
        }
      } finally {
        signal.removeEventListener('abort', halt);
        session.abort();
        await settling;
        this.#consumer = undefined;
        await scheduler?.stop(stopped() ? this.#graceMs : 0);
      }
      await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)), signal);
    }
  }

  /** Create the consumer the first time (deliver `new`), or bring its limits up to date. */
  async #ensureConsumer(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
    const stream = roomEventStream(this.#d.bus.prefix);
    const name = this.endpoint.consumer;
    const ackWait = webhookAckWaitMs(this.#d.settings) * NS_PER_MS;
    const maxAckPending = webhookMaxAckPending(this.#d.settings);
    try {
      const info = await jsm.consumers.info(stream, name);
      if (info.config.ack_wait !== ackWait || info.config.max_ack_pending !== maxAckPending) {
        await jsm.consumers.update(stream, name, {
          ack_wait: ackWait,
          max_ack_pending: maxAckPending,
        });
        this.#log.info(
          { ackWaitMs: ackWait / NS_PER_MS, maxAckPending },
          'webhook consumer updated',
        );
      }
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) {
        throw err;
      }
    }
    await jsm.consumers.add(stream, {
      durable_name: name,
      description: `Switchboard webhooks of endpoint ${this.endpoint.hash}`,
      ack_policy: AckPolicy.Explicit,
      // From when the endpoint was configured: not the stream's whole history.
      deliver_policy: DeliverPolicy.New,
      ack_wait: ackWait,
      max_ack_pending: maxAckPending,
    });
    this.#log.info('webhook consumer created (events from now on)');
  }

  /**
   * Hold what is pulled until every outstanding delivery of the consumer is this
   * instance's (a previous leader's came back), at the latest after ack_wait and a margin;
   * then release the scheduler.
   */
  async #settle(consumer: Consumer, scheduler: RoomScheduler, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + webhookAckWaitMs(this.#d.settings) + 5000;
    while (!signal.aborted) {
      try {
        const info = await consumer.info(false);
        if (info.num_ack_pending <= scheduler.held) break;
        if (Date.now() > deadline) {
          this.#log.warn(
            { outstanding: info.num_ack_pending, held: scheduler.held },
            'webhook deliveries of another instance have not come back; delivering anyway',
          );
          break;
        }
      } catch (err) {
        if (isAborted(signal)) return;
        this.#log.warn({ err }, 'webhook consumer info failed; retrying');
      }
      await sleep(SETTLE_POLL_MS, signal);
    }
    if (!signal.aborted) scheduler.release();
  }
}

/** Whether `signal` has aborted (by now: it changes under the awaits). */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}
