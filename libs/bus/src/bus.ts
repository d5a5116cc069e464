/**
 * The services' connection to NATS: typed request/reply with deadlines, cancellation,
 * trace context and error mapping onto protocol error codes; queue-group handlers that
 * validate what they receive and finish in-flight work on close.
 *
 * A Bus starts connecting when it is created and keeps reconnecting forever; `connected`
 * says whether it is connected now (readiness), and handlers registered with `serve`
 * before the first connection are subscribed as soon as it is made.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  connect,
  errors as natsErrors,
  headers as natsHeaders,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import {
  BusHeaders,
  ProtocolError,
  busReplyEnvelope,
  formatIssues,
  invalidPayload,
  isProtocolError,
  redactUrls,
  subjects,
  type BusReplyEnvelope,
  type ErrorName,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
  type ServiceName,
  type Validator,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { natsAuthOptions, type BusAuth } from './auth.ts';
import { childTraceparent, traceIdOf } from './trace.ts';

export interface BusOptions {
  /** NATS server URL(s), comma-separated. */
  servers: string;
  /** This process's identity on NATS (credentials, TLS, inbox prefix); none: anonymous. */
  auth?: BusAuth;
  /** Subject prefix of this deployment. */
  prefix: string;
  service: ServiceName;
  instanceId: string;
  log: Logger;
  /** Where bus metrics are registered (none when omitted). */
  metrics?: Registry;
  /** Deadline of a request that names none. */
  requestTimeoutMs: number;
  /**
   * Messages (requests and subscriptions) handled at once (default 1024). Beyond it a request
   * is answered SERVICE_UNAVAILABLE at once and any other message dropped (counted): a flood
   * never becomes an unbounded queue of work.
   */
  maxConcurrent?: number;
}

/** The default of BusOptions.maxConcurrent. */
export const DEFAULT_MAX_CONCURRENT = 1024;

/**
 * A payload already encoded as JSON text, sent as it is: for a message assembled from parts
 * that were each encoded once (e.g. a batch whose items were measured as they came).
 */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function encode(payload: unknown): string {
  return payload instanceof JsonText ? payload.text : JSON.stringify(payload);
}

export interface RequestOptions {
  /** Deadline of this request (default: the bus's requestTimeoutMs). */
  timeoutMs?: number;
  /** Cancels the wait; the request fails with CANCELLED. */
  signal?: AbortSignal;
  /** The trace this request belongs to (a handler passes its own ctx.traceparent). */
  traceparent?: string;
  /** The error when nobody subscribes to the subject (default SERVICE_UNAVAILABLE). */
  noResponders?: ErrorName;
}

export interface HandlerContext {
  /** Fires when the caller's deadline passes: stop work, the reply will not be read. */
  readonly signal: AbortSignal;
  /** Absolute deadline, epoch ms. */
  readonly deadline: number;
  readonly traceparent: string;
  /** `<service>/<instanceId>` of the caller, when it said. */
  readonly caller: string | undefined;
  readonly log: Logger;
}

export type Handler<M extends RpcMethod> = (
  request: RpcRequest<M>,
  ctx: HandlerContext,
) => Promise<RpcReply<M>>;

/** A message received by a `subscribe` handler. */
export interface Incoming {
  readonly subject: string;
  readonly traceparent: string;
  /** Whether the sender waits for a reply (a request, not a publish). */
  readonly isRequest: boolean;
  /** A request's absolute deadline (epoch ms): the caller's, else now + requestTimeoutMs. */
  readonly deadline: number;
  /** Answer a request with a bus envelope; ignored for a publish or after the first answer. */
  respond(result: { ok: true; data: unknown } | { ok: false; error: ProtocolError }): void;
}

export type SubscriptionHandler<S extends TSchema> = (
  payload: Static<S>,
  msg: Incoming,
) => void | Promise<void>;

/** A live subscription made with `subscribe`. */
export interface BusSubscription {
  readonly subject: string;
  /** Stop receiving; messages already on their way are still handled. */
  unsubscribe(): void;
}

interface Subscribed {
  subject: string;
  queue: string | undefined;
  /** Never shed (see `subscribe`'s `vital`). */
  vital: boolean;
  validator: Validator<TSchema>;
  handler: SubscriptionHandler<TSchema>;
  sub?: Subscription;
  closed: boolean;
}

interface Served {
  subject: string;
  queue: string | undefined;
  method: RpcMethod;
  handler: Handler<RpcMethod>;
  sub?: Subscription;
}

interface BusMetrics {
  connected: Gauge;
  clientRequests: Counter;
  clientDuration: Histogram;
  served: Counter;
  serveDuration: Histogram;
  shed: Counter;
}

const FIRST_CONNECT_BACKOFF_MS = [100, 250, 500, 1000, 2000];

export class Bus {
  readonly #opts: BusOptions;
  readonly #log: Logger;
  readonly #caller: string;
  readonly #served: Served[] = [];
  readonly #subscribed = new Set<Subscribed>();
  readonly #inflight = new Set<Promise<void>>();
  #lastShedLog = 0;
  readonly #closing = new AbortController();
  readonly #metrics: BusMetrics | undefined;
  #nc: NatsConnection | undefined;
  #connected = false;
  #statusLoop: Promise<void> | undefined;
  readonly #connecting: Promise<void>;
  #connectedWaiters: (() => void)[] = [];
  readonly #reconnectListeners = new Set<() => void>();
  #stopServing: Promise<void> | undefined;

  constructor(opts: BusOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'bus' });
    this.#caller = `${opts.service}/${opts.instanceId}`;
    this.#metrics =
      opts.metrics === undefined ? undefined : busMetrics(opts.metrics, () => this.#connected);
    this.#connecting = this.#connectLoop();
  }

  /** Connected to NATS right now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The underlying connection once made (for JetStream and KV users). */
  get connection(): NatsConnection | undefined {
    return this.#nc;
  }

  get prefix(): string {
    return this.#opts.prefix;
  }

  /**
   * Call `listener` each time the connection comes back after a break (not on the first
   * connection). Messages published to this instance during the break were lost, so state
   * kept in step by them needs a resync. Returns a function that removes the listener.
   */
  onReconnect(listener: () => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  /** Resolves once connected (immediately if connected now); rejects when `signal` aborts. */
  async whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.#connected) return;
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#connectedWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /**
   * Call a method on the service that owns it. Resolves with the validated reply; rejects
   * with a ProtocolError: the handler's own code, SERVICE_UNAVAILABLE (no instance or no
   * NATS), TIMEOUT (deadline passed), CANCELLED (signal) or SYSTEM (bad reply).
   */
  async request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts: RequestOptions = {},
  ): Promise<RpcReply<M>> {
    const label = `${method.service}.${method.method}`;
    const started = performance.now();
    let outcome: string = 'ok';
    try {
      return await this.#request(method, request, opts);
    } catch (err) {
      outcome = isProtocolError(err) ? err.errorName : 'SYSTEM';
      throw err;
    } finally {
      this.#metrics?.clientRequests.inc({ method: label, outcome });
      this.#metrics?.clientDuration.observe(
        { method: label },
        (performance.now() - started) / 1000,
      );
    }
  }

  async #request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts: RequestOptions,
  ): Promise<RpcReply<M>> {
    return (await this.#call(
      subjects.rpc(this.#opts.prefix, method),
      method.service,
      request,
      method.reply,
      opts,
    )) as RpcReply<M>;
  }

  /**
   * A request on any subject whose answerer replies with a bus envelope (see `respond` of
   * `subscribe`): the same deadlines, cancellation and error mapping as `request`. The
   * payload is JSON-encoded, unless it is JsonText.
   */
  async requestSubject<S extends TSchema>(
    subject: string,
    payload: unknown,
    reply: Validator<S>,
    opts: RequestOptions = {},
  ): Promise<Static<S>> {
    return await this.#call(subject, subject, payload, reply, opts);
  }

  async #call<S extends TSchema>(
    subject: string,
    peer: string,
    payload: unknown,
    reply: Validator<S>,
    opts: RequestOptions,
  ): Promise<Static<S>> {
    const timeout = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    if (opts.signal?.aborted === true) throw new ProtocolError('CANCELLED');
    const nc = this.#nc;
    if (nc === undefined || !this.#connected || this.#closing.signal.aborted) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    }
    const h = natsHeaders();
    h.set(BusHeaders.traceparent, childTraceparent(opts.traceparent));
    h.set(BusHeaders.deadline, String(Date.now() + timeout));
    h.set(BusHeaders.caller, this.#caller);

    let msg: Msg;
    try {
      msg = await abortable(
        nc.request(subject, encode(payload), { timeout, headers: h }),
        opts.signal,
      );
    } catch (err) {
      if (
        opts.noResponders !== undefined &&
        err instanceof natsErrors.RequestError &&
        err.isNoResponders()
      ) {
        throw new ProtocolError(opts.noResponders, undefined, { cause: err });
      }
      throw this.#mapRequestError(err, subject);
    }

    let envelope: BusReplyEnvelope;
    try {
      const parsed = busReplyEnvelope.parse(msg.json());
      if (!parsed.ok) throw new Error(formatIssues(parsed.issues));
      envelope = parsed.value;
    } catch (err) {
      this.#log.error({ err, subject }, 'malformed reply');
      throw new ProtocolError('SYSTEM', `malformed reply from ${peer}`, { cause: err });
    }
    if (!envelope.ok) throw ProtocolError.fromCode(envelope.error.code, envelope.error.message);
    const data = reply.parse(envelope.data);
    if (!data.ok) {
      this.#log.error({ subject, issues: data.issues }, 'reply does not match its schema');
      throw new ProtocolError('SYSTEM', `invalid reply from ${peer}`);
    }
    return data.value;
  }

  #mapRequestError(err: unknown, subject: string): ProtocolError {
    if (isProtocolError(err)) return err;
    if (err instanceof natsErrors.TimeoutError)
      return new ProtocolError('TIMEOUT', subject, { cause: err });
    if (
      err instanceof natsErrors.PermissionViolationError ||
      (err instanceof natsErrors.RequestError &&
        err.cause instanceof natsErrors.PermissionViolationError)
    ) {
      // The server refused this identity the subject: a deployment's permissions are wrong.
      this.#log.error(
        { subject },
        'NATS permissions violation: this identity may not publish here',
      );
      return new ProtocolError('SYSTEM', `not permitted: ${subject}`, { cause: err });
    }
    if (err instanceof natsErrors.RequestError) {
      if (err.isNoResponders()) {
        return new ProtocolError('SERVICE_UNAVAILABLE', `no responders on ${subject}`, {
          cause: err,
        });
      }
      if (err.cause instanceof natsErrors.TimeoutError) {
        return new ProtocolError('TIMEOUT', subject, { cause: err });
      }
      return new ProtocolError('SERVICE_UNAVAILABLE', err.message, { cause: err });
    }
    if (
      err instanceof natsErrors.ClosedConnectionError ||
      err instanceof natsErrors.DrainingConnectionError ||
      err instanceof natsErrors.ConnectionError
    ) {
      return new ProtocolError('SERVICE_UNAVAILABLE', err.message, { cause: err });
    }
    this.#log.error({ err, subject }, 'request failed');
    return new ProtocolError('SYSTEM', undefined, { cause: err });
  }

  /**
   * Answer `method` in this service's queue group: requests are shared among the
   * service's instances. The handler gets the validated request and a context whose
   * signal fires at the caller's deadline; what it throws is mapped onto the reply
   * (a ProtocolError keeps its code; anything else is logged and becomes SYSTEM).
   *
   * With `subject`, the method is answered on that subject instead, by this instance alone
   * (no queue group): requests addressed to one instance (e.g. the media node hosting a room).
   */
  serve<M extends RpcMethod>(
    method: M,
    handler: Handler<M>,
    opts: { subject?: string } = {},
  ): void {
    if (method.service !== this.#opts.service) {
      throw new Error(`${this.#opts.service} cannot serve ${method.service}.${method.method}`);
    }
    const served: Served = {
      subject: opts.subject ?? subjects.rpc(this.#opts.prefix, method),
      queue: opts.subject === undefined ? subjects.queue(method.service) : undefined,
      method,
      handler,
    };
    if (this.#stopServing !== undefined) throw new Error('the bus has stopped serving');
    this.#served.push(served);
    if (this.#nc !== undefined) this.#subscribe(this.#nc, served);
  }

  /** Publish a message (fire and forget; buffered while reconnecting). */
  publish(subject: string, payload: unknown, traceparent?: string): void {
    const nc = this.#nc;
    if (nc === undefined || this.#closing.signal.aborted) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    }
    const h = natsHeaders();
    h.set(BusHeaders.traceparent, childTraceparent(traceparent));
    h.set(BusHeaders.caller, this.#caller);
    nc.publish(subject, JSON.stringify(payload), { headers: h });
  }

  /**
   * Publish each of `messages` (JSON text) as one message on `subject`, without headers: for
   * a burst of thousands (a room.live tick), where a header block, a trace and an encoding
   * per message would cost more than the message itself (a third of the publishing time with
   * headers, measured). All of them are UTF-8 encoded at once. Buffered by the NATS client:
   * `flush` tells when the server has them.
   */
  publishMany(subject: string, messages: readonly string[]): void {
    const nc = this.#nc;
    if (nc === undefined || this.#closing.signal.aborted) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    }
    const joined = messages.join('');
    const bytes = Buffer.from(joined, 'utf8');
    // Only ASCII (nearly always): each message's bytes are as many as its characters.
    const ascii = bytes.length === joined.length;
    let at = 0;
    for (const m of messages) {
      const n = ascii ? m.length : Buffer.byteLength(m, 'utf8');
      nc.publish(subject, bytes.subarray(at, at + n));
      at += n;
    }
  }

  /**
   * Resolves once the server has everything this connection published so far (its PONG came
   * back); CANCELLED when `signal` aborts first, SERVICE_UNAVAILABLE when not connected.
   */
  async flush(signal?: AbortSignal): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined || this.#closing.signal.aborted) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    }
    const flushed = nc.flush();
    try {
      await abortable(flushed, signal);
    } catch (err) {
      if (isProtocolError(err) && err.errorName === 'CANCELLED') {
        // Given up on: its own outcome (the connection closing) is not the caller's.
        flushed.catch((e: unknown) => {
          this.#log.debug({ err: e }, 'a NATS flush given up on failed');
        });
        throw err;
      }
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'NATS flush failed', { cause: err });
    }
  }

  /**
   * Receive messages on `subject` (wildcards allowed), validated against `schema`: an
   * invalid one is logged and, if it is a request, answered with JSON_FIELD_INVALID. A
   * handler's error is logged and, for a request, answered (its code, or SYSTEM). With
   * `queue`, each message goes to one subscriber of the group. A `vital` subscription's
   * messages are never shed when this bus has BUS_MAX_CONCURRENT in hand: liveness
   * signals (heartbeats), small and rare, whose loss would make a busy service take its
   * healthy peers for dead.
   */
  subscribe<S extends TSchema>(
    subject: string,
    schema: Validator<S>,
    handler: SubscriptionHandler<S>,
    opts: { queue?: string; vital?: boolean } = {},
  ): BusSubscription {
    const entry: Subscribed = {
      subject,
      queue: opts.queue,
      vital: opts.vital === true,
      validator: schema,
      handler,
      closed: false,
    };
    this.#subscribed.add(entry);
    if (this.#nc !== undefined) this.#subscribeEntry(this.#nc, entry);
    return {
      subject,
      unsubscribe: () => {
        if (entry.closed) return;
        entry.closed = true;
        this.#subscribed.delete(entry);
        const sub = entry.sub;
        if (sub === undefined || sub.isClosed()) return;
        // Drain, not unsubscribe: a message the server sent before it saw the UNSUB is still
        // handled (a request racing the unsubscribe gets an answer rather than a timeout).
        sub.drain().catch((err: unknown) => {
          this.#log.debug({ err, subject }, 'subscription drain failed (connection closed)');
        });
      },
    };
  }

  #subscribeEntry(nc: NatsConnection, entry: Subscribed): void {
    entry.sub = this.#listen(
      nc,
      entry.subject,
      entry.queue,
      (msg) => this.#deliver(entry, msg),
      entry.vital,
    );
  }

  /**
   * Subscribe with a handler whose work is tracked as in flight (stopServing waits for it).
   * `onMessage` answers and logs for itself: it never rejects.
   */
  #listen(
    nc: NatsConnection,
    subject: string,
    queue: string | undefined,
    onMessage: (msg: Msg) => Promise<void>,
    vital = false,
  ): Subscription {
    return nc.subscribe(subject, {
      ...(queue === undefined ? {} : { queue }),
      callback: (err, msg) => {
        if (err !== null) {
          this.#log.error({ err, subject }, 'subscription error');
          return;
        }
        if (!vital && this.#inflight.size >= (this.#opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT)) {
          this.#shed(msg);
          return;
        }
        const p = onMessage(msg);
        this.#inflight.add(p);
        void p.finally(() => this.#inflight.delete(p));
      },
    });
  }

  /** Too much work in hand: refuse a request at once, drop anything else. */
  #shed(msg: Msg): void {
    const isRequest = msg.reply !== undefined && msg.reply !== '';
    this.#metrics?.shed.inc({ kind: isRequest ? 'request' : 'message' });
    const now = Date.now();
    if (now - this.#lastShedLog > 10_000) {
      this.#lastShedLog = now;
      this.#log.warn(
        { subject: msg.subject, inflight: this.#inflight.size },
        'overloaded: shedding bus messages',
      );
    }
    if (isRequest) {
      this.#respond(
        msg,
        this.#log,
        errorEnvelope(new ProtocolError('SERVICE_UNAVAILABLE', 'overloaded')),
      );
    }
  }

  async #deliver(entry: Subscribed, msg: Msg): Promise<void> {
    const traceparent = childTraceparent(msg.headers?.get(BusHeaders.traceparent));
    const isRequest = msg.reply !== undefined && msg.reply !== '';
    let answered = false;
    const incoming: Incoming = {
      subject: msg.subject,
      traceparent,
      isRequest,
      deadline: this.#deadlineOf(msg),
      respond: (result) => {
        if (!isRequest || answered) return;
        answered = true;
        this.#respond(
          msg,
          this.#log,
          result.ok ? { ok: true, data: result.data } : errorEnvelope(result.error),
        );
      },
    };
    let body: unknown;
    try {
      body = msg.json();
    } catch {
      this.#log.warn({ subject: msg.subject }, 'message is not JSON; dropped');
      incoming.respond({ ok: false, error: new ProtocolError('JSON') });
      return;
    }
    const parsed = entry.validator.parse(body);
    if (!parsed.ok) {
      const detail = formatIssues(parsed.issues);
      this.#log.warn(
        { subject: msg.subject, detail },
        'message does not match its schema; dropped',
      );
      incoming.respond({ ok: false, error: new ProtocolError('JSON_FIELD_INVALID', detail) });
      return;
    }
    try {
      await entry.handler(parsed.value, incoming);
    } catch (err) {
      if (isProtocolError(err)) {
        incoming.respond({ ok: false, error: err });
        return;
      }
      this.#log.error({ err, subject: msg.subject }, 'message handler failed');
      incoming.respond({ ok: false, error: new ProtocolError('SYSTEM') });
    }
  }

  /** The caller's deadline header, else the default one from now. */
  #deadlineOf(msg: Msg): number {
    const header = Number(msg.headers?.get(BusHeaders.deadline));
    return Number.isFinite(header) && header > 0
      ? header
      : Date.now() + this.#opts.requestTimeoutMs;
  }

  #subscribe(nc: NatsConnection, served: Served): void {
    served.sub = this.#listen(nc, served.subject, served.queue, (msg) => this.#handle(served, msg));
  }

  async #handle(served: Served, msg: Msg): Promise<void> {
    const label = `${served.method.service}.${served.method.method}`;
    const started = performance.now();
    let outcome = 'ok';
    try {
      outcome = await this.#process(served, msg);
    } catch (err) {
      // #process answers every request itself; reaching here is a bug worth a loud log.
      outcome = 'SYSTEM';
      this.#log.error({ err, subject: served.subject }, 'request handling failed');
    } finally {
      this.#metrics?.served.inc({ method: label, outcome });
      this.#metrics?.serveDuration.observe({ method: label }, (performance.now() - started) / 1000);
    }
  }

  async #process(served: Served, msg: Msg): Promise<string> {
    const traceparent = childTraceparent(msg.headers?.get(BusHeaders.traceparent));
    const callerHeader = msg.headers?.get(BusHeaders.caller);
    const caller = callerHeader === undefined || callerHeader === '' ? undefined : callerHeader;
    const log = lazyChild(this.#log, {
      subject: served.subject,
      traceId: traceIdOf(traceparent),
      ...(caller === undefined ? {} : { caller }),
    });
    if (msg.reply === undefined || msg.reply === '') {
      log.warn('request without a reply subject; ignored');
      return 'no_reply_subject';
    }
    const deadline = this.#deadlineOf(msg);
    if (Date.now() >= deadline) {
      // The caller has given up already; doing the work would only waste it.
      log.warn({ lateMs: Date.now() - deadline }, 'request arrived after its deadline; skipped');
      return 'expired';
    }

    const fail = (err: ProtocolError): string => {
      this.#respond(msg, log, errorEnvelope(err));
      return err.errorName;
    };

    let body: unknown;
    try {
      body = msg.json();
    } catch {
      return fail(new ProtocolError('JSON', 'request payload is not JSON'));
    }
    const parsed = served.method.request.parse(body);
    if (!parsed.ok) return fail(invalidPayload(parsed.issues));

    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new ProtocolError('TIMEOUT'));
    }, deadline - Date.now());
    try {
      const data = await served.handler(parsed.value, {
        signal: ac.signal,
        deadline,
        traceparent,
        caller,
        log,
      });
      // Finished after the deadline: the caller has given up (or is about to); a late
      // success must not be mistaken for one in time.
      if (ac.signal.aborted) {
        return fail(new ProtocolError('TIMEOUT', 'the handler finished after the deadline'));
      }
      this.#respond(msg, log, { ok: true, data });
      return 'ok';
    } catch (err) {
      if (isProtocolError(err)) return fail(err);
      log.error({ err }, 'handler failed');
      return fail(new ProtocolError('SYSTEM'));
    } finally {
      clearTimeout(timer);
    }
  }

  #respond(msg: Msg, log: Logger, envelope: BusReplyEnvelope): void {
    if (!msg.respond(JSON.stringify(envelope))) {
      log.warn('could not send the reply (connection closed)');
    }
  }

  async #connectLoop(): Promise<void> {
    const servers = this.#opts.servers.split(',');
    for (let attempt = 0; !this.#closing.signal.aborted; attempt++) {
      try {
        const nc = await connect({
          ...natsAuthOptions(this.#opts.auth),
          servers,
          name: this.#caller,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          reconnectJitter: 200,
          timeout: 2000,
          pingInterval: 10_000,
          maxPingOut: 2,
          // nats.js otherwise builds an Error per request up front, for its stack trace;
          // errors are mapped to protocol codes here anyway, and it showed in profiles.
          noAsyncTraces: true,
        });
        if (this.#isClosing()) {
          await nc.close();
          return;
        }
        this.#nc = nc;
        this.#connected = true;
        this.#log.info({ server: redactUrls(nc.getServer()) }, 'connected to NATS');
        for (const served of this.#served) this.#subscribe(nc, served);
        for (const entry of this.#subscribed) this.#subscribeEntry(nc, entry);
        this.#statusLoop = this.#watchStatus(nc).catch((err: unknown) => {
          // The status stream ends with the connection; an error from it is only logged.
          this.#log.error({ err }, 'NATS status stream failed');
        });
        this.#notifyConnected();
        return;
      } catch (err) {
        const wait =
          FIRST_CONNECT_BACKOFF_MS[Math.min(attempt, FIRST_CONNECT_BACKOFF_MS.length - 1)] ?? 2000;
        if (attempt === 0 || attempt % 10 === 0) {
          this.#log.warn(
            // Never the credentials (user:password@, token@) of the URLs.
            { err, servers: servers.map(redactUrls), attempt },
            `NATS not reachable; retrying every ${wait} ms`,
          );
        }
        try {
          await sleep(wait, undefined, { signal: this.#closing.signal });
        } catch {
          return; // closing
        }
      }
    }
  }

  /** A method, not a property read, so narrowing across awaits cannot fool the checker. */
  #isClosing(): boolean {
    return this.#closing.signal.aborted;
  }

  #notifyConnected(): void {
    const waiters = this.#connectedWaiters;
    this.#connectedWaiters = [];
    for (const w of waiters) w();
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.#connected = false;
          this.#log.warn({ server: redactUrls(s.server) }, 'disconnected from NATS');
          break;
        case 'reconnect':
          this.#connected = true;
          this.#log.info({ server: redactUrls(s.server) }, 'reconnected to NATS');
          this.#notifyConnected();
          for (const listener of this.#reconnectListeners) {
            try {
              listener();
            } catch (err) {
              this.#log.error({ err }, 'reconnect listener failed');
            }
          }
          break;
        case 'error':
          this.#log.error({ err: s.error }, 'NATS error');
          break;
        case 'close':
          this.#connected = false;
          break;
        case 'ldm':
          this.#log.warn('NATS server entering lame duck mode');
          break;
        case 'slowConsumer':
          this.#log.warn({ sub: s.sub.getSubject() }, 'slow consumer');
          break;
        case 'reconnecting':
        case 'update':
        case 'ping':
        case 'staleConnection':
        case 'forceReconnect':
          break;
      }
    }
  }

  /**
   * Stop taking requests: unsubscribe every handler (messages already delivered are still
   * processed) and wait until every request in flight has been answered. The connection
   * stays up, so shutdown steps that follow can still publish and request.
   */
  async stopServing(): Promise<void> {
    this.#stopServing ??= this.#drainHandlers();
    await this.#stopServing;
  }

  async #drainHandlers(): Promise<void> {
    const served = this.#served.splice(0);
    await Promise.all(
      served.map(async (s) => {
        if (s.sub !== undefined && !s.sub.isClosed()) await s.sub.drain();
      }),
    );
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  /** Stop serving, flush pending publishes and close the connection. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    await this.stopServing();
    this.#closing.abort();
    await this.#connecting;
    const nc = this.#nc;
    if (nc === undefined) return;
    if (!nc.isClosed()) await nc.drain();
    const closed = await nc.closed();
    if (closed instanceof Error)
      this.#log.warn({ err: closed }, 'NATS connection closed with an error');
    await this.#statusLoop;
    this.#connected = false;
  }
}

/**
 * `parent.child(bindings)`, made when it is first used: most requests log nothing, and a
 * child logger costs its bindings' redaction (some 50 µs a request in the rooms service's
 * profile, on every join and leave).
 */
function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy(parent, {
    get(_target, prop) {
      child ??= parent.child(bindings);
      const value: unknown = Reflect.get(child, prop, child);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(child)
        : value;
    },
  });
}

/** A ProtocolError as the error half of a bus reply. */
function errorEnvelope(err: ProtocolError): BusReplyEnvelope {
  return { ok: false, error: { code: err.code, name: err.errorName, message: err.message } };
}

async function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await p;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        onAbort = () => {
          reject(new ProtocolError('CANCELLED'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

function busMetrics(registry: Registry, connected: () => boolean): BusMetrics {
  const existing = registry.getSingleMetric('sb_bus_client_requests_total');
  if (existing !== undefined)
    throw new Error('bus metrics are already registered in this registry');
  return {
    connected: new Gauge({
      name: 'sb_nats_connected',
      help: '1 while connected to NATS',
      registers: [registry],
      collect() {
        this.set(connected() ? 1 : 0);
      },
    }),
    clientRequests: new Counter({
      name: 'sb_bus_client_requests_total',
      help: 'Requests sent to other services, by method and outcome (ok or an error name)',
      labelNames: ['method', 'outcome'],
      registers: [registry],
    }),
    clientDuration: new Histogram({
      name: 'sb_bus_client_request_duration_seconds',
      help: 'Round trip of requests sent to other services',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    served: new Counter({
      name: 'sb_bus_served_requests_total',
      help: 'Requests answered by this instance, by method and outcome',
      labelNames: ['method', 'outcome'],
      registers: [registry],
    }),
    shed: new Counter({
      name: 'sb_bus_shed_total',
      help: 'Messages refused (requests: SERVICE_UNAVAILABLE) or dropped because the bus had BUS_MAX_CONCURRENT in hand',
      labelNames: ['kind'],
      registers: [registry],
    }),
    serveDuration: new Histogram({
      name: 'sb_bus_served_request_duration_seconds',
      help: 'Time to answer a request',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
