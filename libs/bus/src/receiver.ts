/**
 * What a Bus receives (its serving side): the methods it serves (ServedMethod) and the
 * subscriptions made with `subscribe` (Subscription), each subscribed on NATS as soon as
 * the Bus's connection is made, or at once when it is made already. The handling of every
 * message is tracked as in flight; beyond BusOptions.maxConcurrent a message is shed at
 * once, never queued. `stopServing` drains the served methods and waits for the work in
 * flight; the connection is the Bus's, and stays up.
 */
import type {
  Msg,
  NatsConnection,
  Subscription as NatsSubscription,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  ProtocolError,
  subjects,
  type RpcMethod,
  type ServiceName,
  type Validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import type { BusMetrics } from './metrics.ts';
import { errorEnvelope, respond } from './replies.ts';
import { ServedMethod, type Handler } from './served-method.ts';
import { Subscription, type BusSubscription, type SubscriptionHandler } from './subscription.ts';

/** What the Receiver subscribes on NATS: a served method or a subscription. */
interface Listener {
  readonly subject: string;
  readonly queue: string | undefined;
  /** Never shed (see BusLike.subscribe's `vital`). */
  readonly vital: boolean;
  /** Handle one message: it answers and logs for itself, and never rejects. */
  handle(msg: Msg): Promise<void>;
}

export interface ReceiverOptions {
  /** The service whose methods this instance may serve. */
  service: ServiceName;
  prefix: string;
  /** Deadline of a request whose caller named none. */
  requestTimeoutMs: number;
  /** Messages handled at once (BusOptions.maxConcurrent, its default applied). */
  maxConcurrent: number;
  log: Logger;
  metrics: Pick<BusMetrics, 'served' | 'serveDuration' | 'shed'> | undefined;
}

export class Receiver {
  readonly #opts: ReceiverOptions;
  readonly #log: Logger;
  readonly #served: ServedMethod[] = [];
  readonly #subscriptions = new Set<Subscription>();
  /** The NATS subscription of each served method and subscription, once connected. */
  readonly #subs = new Map<Listener, NatsSubscription>();
  readonly #inflight = new Set<Promise<void>>();
  #lastShedLog = 0;
  #nc: NatsConnection | undefined;
  #stopServing: Promise<void> | undefined;

  constructor(opts: ReceiverOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** The Bus's connection is made: subscribe what was registered before it, in order. */
  attach(nc: NatsConnection): void {
    this.#nc = nc;
    for (const served of this.#served) this.#listen(nc, served);
    for (const subscription of this.#subscriptions) this.#listen(nc, subscription);
  }

  /** BusLike.serve. */
  serve<M extends RpcMethod>(
    method: M,
    handler: Handler<M>,
    opts: { address?: string } = {},
  ): void {
    if (method.service !== this.#opts.service) {
      throw new Error(`${this.#opts.service} cannot serve ${method.service}.${method.method}`);
    }
    const served = new ServedMethod(method, handler, {
      // An addressed method: this instance alone, on its address's subject (no queue group).
      subject: subjects.rpc(this.#opts.prefix, method, opts.address),
      queue: method.addressed ? undefined : subjects.queue(method.service),
      requestTimeoutMs: this.#opts.requestTimeoutMs,
      log: this.#log,
      metrics: this.#opts.metrics,
    });
    if (this.#stopServing !== undefined) throw new Error('the bus has stopped serving');
    this.#served.push(served);
    if (this.#nc !== undefined) this.#listen(this.#nc, served);
  }

  /** BusLike.subscribe. */
  subscribe<S extends TSchema>(
    subject: string,
    schema: Validator<S>,
    handler: SubscriptionHandler<S>,
    opts: { queue?: string; vital?: boolean } = {},
  ): BusSubscription {
    const subscription = new Subscription(subject, schema, handler, {
      queue: opts.queue,
      vital: opts.vital === true,
      requestTimeoutMs: this.#opts.requestTimeoutMs,
      log: this.#log,
    });
    subscription.once('close', () => {
      this.#subscriptions.delete(subscription);
      const sub = this.#subs.get(subscription);
      this.#subs.delete(subscription);
      if (sub === undefined || sub.isClosed()) return;
      // Drain, not unsubscribe: a message the server sent before it saw the UNSUB is still
      // handled (a request racing the unsubscribe gets an answer rather than a timeout).
      sub.drain().catch((err: unknown) => {
        this.#log.debug({ err, subject }, 'subscription drain failed (connection closed)');
      });
    });
    this.#subscriptions.add(subscription);
    if (this.#nc !== undefined) this.#listen(this.#nc, subscription);
    return subscription;
  }

  /**
   * Subscribe `listener` on NATS, its handling of each message tracked as in flight
   * (stopServing waits for it); shed beyond maxConcurrent unless it is vital.
   */
  #listen(nc: NatsConnection, listener: Listener): void {
    const { subject, queue, vital } = listener;
    const sub = nc.subscribe(subject, {
      ...(queue === undefined ? {} : { queue }),
      callback: (err, msg) => {
        if (err !== null) {
          this.#log.error({ err, subject }, 'subscription error');
          return;
        }
        if (!vital && this.#inflight.size >= this.#opts.maxConcurrent) {
          this.#shed(msg);
          return;
        }
        const p = listener.handle(msg);
        this.#inflight.add(p);
        void p.finally(() => this.#inflight.delete(p));
      },
    });
    this.#subs.set(listener, sub);
  }

  /** Too much work in hand: refuse a request at once, drop anything else. */
  #shed(msg: Msg): void {
    const isRequest = msg.reply !== undefined && msg.reply !== '';
    this.#opts.metrics?.shed.inc({ kind: isRequest ? 'request' : 'message' });
    const now = Date.now();
    if (now - this.#lastShedLog > 10_000) {
      this.#lastShedLog = now;
      this.#log.warn(
        { subject: msg.subject, inflight: this.#inflight.size },
        'overloaded: shedding bus messages',
      );
    }
    if (isRequest) {
      respond(
        msg,
        this.#log,
        errorEnvelope(new ProtocolError('SERVICE_UNAVAILABLE', 'overloaded')),
      );
    }
  }

  /**
   * Stop taking requests: unsubscribe every served method (messages already delivered are
   * still processed) and wait until every request in flight has been answered.
   */
  async stopServing(): Promise<void> {
    this.#stopServing ??= this.#drainHandlers();
    await this.#stopServing;
  }

  async #drainHandlers(): Promise<void> {
    const served = this.#served.splice(0);
    await Promise.all(
      served.map(async (s) => {
        const sub = this.#subs.get(s);
        this.#subs.delete(s);
        if (sub !== undefined && !sub.isClosed()) await sub.drain();
      }),
    );
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }
}
