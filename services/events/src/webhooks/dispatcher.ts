/**
 * Webhooks of room events (issue 15): every durable room event is POSTed, signed, to each
 * endpoint of WEBHOOK_URLS — per room in order, rooms in parallel, at least once.
 *
 * Only the holder of the events service's leader lease delivers, so a room's events are
 * POSTed by one instance at a time: on taking the lease it makes sure the parked stream
 * exists, deletes the `webhook_*` consumers of endpoints no longer configured, and starts one
 * EndpointWorker per endpoint; on losing it, it stops them at once (what they held is nak'ed
 * for the next leader). On shutdown, deliveries in flight get part of SHUTDOWN_TIMEOUT_MS to
 * finish before the rest is nak'ed.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Bus } from '@switchboard/bus';
import { WEBHOOK_CONSUMER_PREFIX, roomEventStream } from '@switchboard/protocol';
import type { Logger, Registry } from '@switchboard/service';
import type { LeaderLease } from '../lease.ts';
import { EndpointWorker } from './endpoint.ts';
import { WebhookMetrics } from './metrics.ts';
import { ParkingLot } from './parking.ts';
import { WebhookSender } from './sender.ts';
import type { WebhookSettings } from './settings.ts';

const API_TIMEOUT_MS = 5000;
const SAMPLE_TIMEOUT_MS = 1000;

export interface DispatcherOptions {
  readonly bus: Bus;
  readonly lease: LeaderLease;
  readonly settings: WebhookSettings;
  /** The service's version, in the user-agent. */
  readonly version: string;
  readonly registry: Registry;
  readonly log: Logger;
  /** How long deliveries in flight may take to finish on shutdown. */
  readonly shutdownGraceMs: number;
}

export class WebhookDispatcher {
  readonly #o: DispatcherOptions;
  readonly #log: Logger;
  readonly #sender: WebhookSender;
  readonly #parking: ParkingLot;
  readonly #metrics: WebhookMetrics;
  #workers: EndpointWorker[] = [];
  /** Leadership changes, one after another. */
  #transition: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(o: DispatcherOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'webhooks' });
    this.#sender = new WebhookSender({
      keyId: o.settings.keyId,
      secret: o.settings.secret,
      timeoutMs: o.settings.timeoutMs,
      userAgent: `Switchboard-Webhooks/${o.version}`,
    });
    this.#parking = new ParkingLot(o.bus.prefix);
    this.#metrics = new WebhookMetrics(
      o.registry,
      o.settings.endpoints.map((e) => e.hash),
      async () => await this.#samplePending(),
    );
  }

  start(): void {
    this.#log.info(
      { endpoints: this.#o.settings.endpoints.map((e) => e.hash), key: this.#o.settings.keyId },
      'webhooks configured',
    );
    this.#o.lease.onChange((leader) => {
      this.#enqueue(async () => {
        if (leader) await this.#lead();
        else await this.#follow(0);
      });
    });
    if (this.#o.lease.leader)
      this.#enqueue(async () => {
        await this.#lead();
      });
  }

  /** Stop delivering: in-flight deliveries get the grace, the rest goes back to the server. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#enqueue(async () => {
      await this.#follow(this.#o.shutdownGraceMs);
    });
    await this.#transition;
  }

  #enqueue(step: () => Promise<void>): void {
    this.#transition = this.#transition.then(step).catch((err: unknown) => {
      this.#log.error({ err }, 'webhooks: a leadership change failed');
    });
  }

  async #lead(): Promise<void> {
    if (this.#stopped || this.#workers.length > 0 || !this.#o.lease.leader) return;
    const nc = this.#o.bus.connection;
    if (nc !== undefined) {
      try {
        await this.#parking.ensureStream(nc);
      } catch (err) {
        // Parking tries again when it needs the stream.
        this.#log.warn({ err }, 'creating the parked webhooks stream failed');
      }
      await this.#removeStaleConsumers();
    }
    this.#workers = this.#o.settings.endpoints.map(
      (endpoint) =>
        new EndpointWorker(endpoint, {
          bus: this.#o.bus,
          settings: this.#o.settings,
          sender: this.#sender,
          parking: this.#parking,
          metrics: this.#metrics,
          log: this.#log,
        }),
    );
    for (const w of this.#workers) w.start();
    this.#log.info('webhook delivery started (leader)');
  }

  async #follow(graceMs: number): Promise<void> {
    const workers = this.#workers;
    this.#workers = [];
    if (workers.length === 0) return;
    await Promise.all(
      workers.map(async (w) => {
        await w.stop(graceMs);
      }),
    );
    this.#log.info('webhook delivery stopped');
  }

  /** Delete the consumers of endpoints that are no longer configured. */
  async #removeStaleConsumers(): Promise<void> {
    const nc = this.#o.bus.connection;
    if (nc === undefined) return;
    const stream = roomEventStream(this.#o.bus.prefix);
    const wanted = new Set(this.#o.settings.endpoints.map((e) => e.consumer));
    try {
      const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
      const stale: string[] = [];
      for await (const ci of jsm.consumers.list(stream)) {
        if (ci.name.startsWith(WEBHOOK_CONSUMER_PREFIX) && !wanted.has(ci.name)) {
          stale.push(ci.name);
        }
      }
      for (const name of stale) {
        await jsm.consumers.delete(stream, name);
        this.#log.info({ consumer: name }, 'webhook consumer of a removed endpoint deleted');
      }
    } catch (err) {
      // No stream yet, or NATS away: the next leadership tries again.
      this.#log.warn({ err }, 'looking for webhook consumers of removed endpoints failed');
    }
  }

  async #samplePending(): Promise<ReadonlyMap<string, number>> {
    const out = new Map<string, number>();
    await Promise.all(
      this.#workers.map(async (w) => {
        try {
          const n = await Promise.race([
            w.pending(),
            delay(SAMPLE_TIMEOUT_MS, undefined, { ref: false }),
          ]);
          if (n !== undefined) out.set(w.endpoint.hash, n);
        } catch (err) {
          this.#log.debug({ err, endpoint: w.endpoint.hash }, 'webhook backlog not sampled');
        }
      }),
    );
    return out;
  }
}
