/**
 * The deliveries of one endpoint while this instance leads: the messages its consumer
 * handed over, queued per room in stream order. A room's events are POSTed one at a time —
 * the next only once the previous is acked (delivered, or parked) — and up to
 * WEBHOOK_MAX_IN_FLIGHT rooms at once, taking turns when more are waiting.
 *
 * A failed POST is retried with backoff while the room's later events wait (other rooms go
 * on); after WEBHOOK_MAX_ATTEMPTS it is parked (ParkingLot) and acked, and the room goes on.
 * Every message held — waiting, in flight or between attempts — is kept alive with
 * `working()` every quarter of the consumer's ack_wait, so the server does not deliver it
 * again meanwhile. A message the server delivers again anyway (a lost `working()`) replaces
 * the one held rather than queueing twice; one already acked is acked again, not re-POSTed.
 *
 * Until `release()` nothing is POSTed: the endpoint worker first makes sure every earlier
 * delivery of its consumer (a previous leader's) has come back to this one, so the queues
 * hold each room's events in order (see endpoint.ts).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  durableEventOfSubject,
  formatIssues,
  roomEvent,
  webhookBodyJson,
} from '@switchboard/protocol';
import { sleep, type Logger } from '@switchboard/service';
import type { WebhookMetrics } from './metrics.ts';
import type { ParkingLot } from './parking.ts';
import type { WebhookSender } from './sender.ts';
import { retryDelayMs, type WebhookEndpoint, type WebhookSettings } from './settings.ts';

/** The queue of stored events that are not valid: parked at once, never POSTed. */
const INVALID = '\u0000invalid';
/** Acked stream sequences remembered, so a late redelivery is acked, not POSTed again. */
const RECENT_ACKS = 4096;
const ACK_TIMEOUT_MS = 5000;

interface Delivery {
  readonly streamSeq: number;
  /** The latest delivery of the message (acks and keep-alives go to it). */
  msg: JsMsg;
  readonly subject: string;
  readonly roomId: string | undefined;
  readonly eventId: string;
  /** The event's commit time, epoch ms (lag is measured from it). */
  readonly ts: number;
  /** The JSON body POSTed (or the raw message, when `invalid`). */
  readonly body: string;
  /** Why the stored event cannot be delivered (it is parked at once). */
  readonly invalid: string | undefined;
  failures: number;
}

interface Room {
  readonly key: string;
  /** In stream order. */
  readonly queue: Delivery[];
  /** In the waiting line or being delivered. */
  scheduled: boolean;
}

export interface SchedulerDeps {
  readonly endpoint: WebhookEndpoint;
  readonly settings: WebhookSettings;
  readonly sender: WebhookSender;
  readonly parking: ParkingLot;
  readonly metrics: WebhookMetrics;
  readonly nc: NatsConnection;
  readonly prefix: string;
  readonly ackWaitMs: number;
  /** Names the endpoint already. */
  readonly log: Logger;
}

export class RoomScheduler {
  readonly #d: SchedulerDeps;
  readonly #held = new Map<number, Delivery>();
  readonly #rooms = new Map<string, Room>();
  /** Rooms with work waiting for a slot, first come first served. */
  readonly #line: Room[] = [];
  readonly #workers = new Set<Promise<void>>();
  readonly #acked = new Set<number>();
  /** Messages that came after halt(): nak'ed by stop(). */
  readonly #late: JsMsg[] = [];
  /** Aborted by stop(): no new attempt, no more waiting between attempts. */
  readonly #stop = new AbortController();
  /** Aborted when stop()'s grace ends: the POSTs still in flight are cut. */
  readonly #cut = new AbortController();
  readonly #keepalive: NodeJS.Timeout;
  #active = 0;
  #released = false;

  constructor(deps: SchedulerDeps) {
    this.#d = deps;
    this.#keepalive = setInterval(
      () => {
        this.#keepAlive();
      },
      Math.max(250, Math.floor(deps.ackWaitMs / 4)),
    );
  }

  /** Messages held: received and not acked yet. */
  get held(): number {
    return this.#held.size;
  }

  get released(): boolean {
    return this.#released;
  }

  /** Take a message of the consumer. */
  add(msg: JsMsg): void {
    if (this.#stop.signal.aborted) {
      // Given back by stop(), after the pull that brought it is over.
      this.#late.push(msg);
      return;
    }
    const seq = msg.seq;
    if (this.#acked.has(seq)) {
      // Done already; its ack was lost on the way.
      this.#settle(msg, 'ack');
      return;
    }
    const existing = this.#held.get(seq);
    if (existing !== undefined) {
      existing.msg = msg;
      return;
    }
    const d = this.#parse(msg);
    this.#held.set(seq, d);
    const key = d.invalid === undefined ? (d.roomId ?? INVALID) : INVALID;
    let room = this.#rooms.get(key);
    if (room === undefined) {
      room = { key, queue: [], scheduled: false };
      this.#rooms.set(key, room);
    }
    // In stream order: a message delivered again after later ones (a previous leader's)
    // goes before them.
    let at = room.queue.length;
    while (at > 0 && (room.queue[at - 1]?.streamSeq ?? 0) > seq) at--;
    room.queue.splice(at, 0, d);
    this.#schedule(room);
  }

  /** Start delivering (until now, messages were only held). */
  release(): void {
    this.#released = true;
    this.#pump();
  }

  /** No new attempt from now on (POSTs in flight go on); messages still coming are kept. */
  halt(): void {
    this.#stop.abort();
  }

  /**
   * Stop: no new attempt; POSTs in flight get `graceMs` to finish (a 2xx is acked), then
   * are cut; every message not acked is nak'ed, in stream order, for the next leader. Call
   * it once no pull of this scheduler's is open any more.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stop.abort();
    const timer = setTimeout(() => {
      this.#cut.abort();
    }, graceMs);
    try {
      while (this.#workers.size > 0) await Promise.all([...this.#workers]);
    } finally {
      clearTimeout(timer);
      this.#cut.abort();
      clearInterval(this.#keepalive);
    }
    const left = [...this.#held.values(), ...this.#late.map((msg) => ({ msg, streamSeq: msg.seq }))]
      .filter((d) => !this.#acked.has(d.streamSeq))
      .sort((a, b) => a.streamSeq - b.streamSeq);
    for (const d of left) this.#settle(d.msg, 'nak');
    this.#late.length = 0;
    this.#held.clear();
    this.#rooms.clear();
    this.#line.length = 0;
  }

  #parse(msg: JsMsg): Delivery {
    const seq = msg.seq;
    const raw = msg.string();
    const base = { streamSeq: seq, msg, subject: msg.subject, failures: 0 };
    const event = durableEventOfSubject(this.#d.prefix, msg.subject);
    const invalid = (why: string, json?: unknown): Delivery => {
      const fields = (typeof json === 'object' && json !== null ? json : {}) as Record<
        string,
        unknown
      >;
      return {
        ...base,
        roomId: undefined,
        eventId: typeof fields['id'] === 'string' ? fields['id'] : '',
        ts: Date.now(),
        body: raw,
        invalid: why,
      };
    };
    if (event === undefined) return invalid('not a durable room event subject');
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return invalid(`${event}: not JSON`);
    }
    const parsed = roomEvent[event].parse(json);
    if (!parsed.ok) {
      return invalid(`not a valid ${event}: ${formatIssues(parsed.issues)}`.slice(0, 1000), json);
    }
    const e = parsed.value;
    return {
      ...base,
      roomId: e.roomId,
      eventId: e.id,
      ts: e.ts,
      body: webhookBodyJson(event, e, raw),
      invalid: undefined,
    };
  }

  #schedule(room: Room): void {
    if (room.scheduled) return;
    room.scheduled = true;
    this.#line.push(room);
    this.#pump();
  }

  #pump(): void {
    if (!this.#released) return;
    while (
      !this.#stop.signal.aborted &&
      this.#active < this.#d.settings.maxInFlight &&
      this.#line.length > 0
    ) {
      const room = this.#line.shift();
      if (room === undefined) break;
      this.#active++;
      const worker = this.#run(room)
        .catch((err: unknown) => {
          this.#d.log.error({ err }, 'webhook worker failed');
        })
        .finally(() => {
          this.#active--;
          this.#workers.delete(worker);
          this.#pump();
        });
      this.#workers.add(worker);
    }
  }

  /** Deliver a room's events in order, yielding its slot to waiting rooms after each. */
  async #run(room: Room): Promise<void> {
    for (;;) {
      const d = room.queue[0];
      if (d === undefined || this.#stop.signal.aborted) break;
      if (!(await this.#deliver(d))) break;
      room.queue.shift();
      this.#held.delete(d.streamSeq);
      this.#remember(d.streamSeq);
      if (this.#line.length > 0 && room.queue.length > 0) {
        // Others are waiting: to the back of the line.
        this.#line.push(room);
        return;
      }
    }
    room.scheduled = false;
    if (room.queue.length === 0) this.#rooms.delete(room.key);
    else if (!this.#stop.signal.aborted) this.#schedule(room);
  }

  /** Deliver (or park) one event; true once it is acked, false when stopped first. */
  async #deliver(d: Delivery): Promise<boolean> {
    const { endpoint, settings, sender, metrics, log } = this.#d;
    if (d.invalid !== undefined) return await this.#park(d, d.invalid);
    for (;;) {
      if (this.#stop.signal.aborted) return false;
      const result = await sender.post(endpoint, d.eventId, d.body, this.#cut.signal);
      if (result.ok) {
        metrics.attempts.inc({ endpoint: endpoint.hash, result: 'ok' });
        metrics.delivered.inc({ endpoint: endpoint.hash });
        metrics.lag.observe({ endpoint: endpoint.hash }, Math.max(0, Date.now() - d.ts) / 1000);
        await this.#ack(d);
        return true;
      }
      // Cut by stop(): not the endpoint's failure; the message goes back to the server.
      if (this.#cut.signal.aborted) return false;
      metrics.attempts.inc({ endpoint: endpoint.hash, result: 'failed' });
      d.failures++;
      const ctx = {
        eventId: d.eventId,
        roomId: d.roomId,
        attempt: d.failures,
        error: result.error,
      };
      if (d.failures >= settings.maxAttempts) return await this.#park(d, result.error);
      if (d.failures === 1) log.warn(ctx, 'webhook delivery failed; retrying');
      else log.debug(ctx, 'webhook delivery failed again; retrying');
      await sleep(retryDelayMs(d.failures, settings), this.#stop.signal);
    }
  }

  /** Store the event in the parked stream, then ack it; retried until stored or stopped. */
  async #park(d: Delivery, error: string): Promise<boolean> {
    const { endpoint, parking, metrics, log, nc, settings } = this.#d;
    const record = {
      endpoint: endpoint.hash,
      streamSeq: d.streamSeq,
      subject: d.subject.slice(0, 512),
      ...(d.invalid === undefined ? { eventId: d.eventId } : {}),
      ...(d.roomId === undefined ? {} : { roomId: d.roomId }),
      body: d.body,
      error: error.slice(0, 1024),
      attempts: d.failures,
      parkedAt: Date.now(),
    };
    for (let tries = 1; ; tries++) {
      try {
        await parking.park(nc, record);
        break;
      } catch (err) {
        if (this.#stop.signal.aborted) return false;
        log.error({ err, eventId: d.eventId }, 'parking a webhook event failed; retrying');
        try {
          await parking.ensureStream(nc);
        } catch (e) {
          log.warn({ err: e }, 'creating the parked webhooks stream failed');
        }
        await sleep(retryDelayMs(tries, settings), this.#stop.signal);
        if (this.#stopped()) return false;
      }
    }
    metrics.parked.inc({ endpoint: endpoint.hash });
    log.warn(
      {
        eventId: d.eventId,
        roomId: d.roomId,
        streamSeq: d.streamSeq,
        attempts: d.failures,
        error,
      },
      'webhook event parked',
    );
    await this.#ack(d);
    return true;
  }

  async #ack(d: Delivery): Promise<void> {
    try {
      await d.msg.ackAck({ timeout: ACK_TIMEOUT_MS });
    } catch (err) {
      // The server may deliver it again: it is then acked without a POST (#acked), or, on
      // another leader, POSTed again with the same id.
      this.#d.log.warn({ err, eventId: d.eventId }, 'webhook ack not confirmed');
    }
  }

  #remember(seq: number): void {
    this.#acked.add(seq);
    if (this.#acked.size > RECENT_ACKS) {
      const oldest = this.#acked.values().next();
      if (oldest.done !== true) this.#acked.delete(oldest.value);
    }
  }

  #keepAlive(): void {
    for (const d of this.#held.values()) {
      try {
        d.msg.working();
      } catch (err) {
        this.#d.log.debug({ err }, 'webhook keep-alive not sent');
        return;
      }
    }
  }

  /** Whether stop() was called (a method: it changes under the awaits). */
  #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  #settle(msg: JsMsg, how: 'ack' | 'nak'): void {
    try {
      if (how === 'ack') msg.ack();
      else msg.nak();
    } catch (err) {
      // Not connected: the server delivers it again after ack_wait.
      this.#d.log.debug({ err, how }, 'webhook message not settled');
    }
  }
}
