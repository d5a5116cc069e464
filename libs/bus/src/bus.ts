/**
 * The services' connection to NATS: typed request/reply with deadlines, cancellation,
 * trace context and error mapping onto protocol error codes; queue-group handlers that
 * validate what they receive and finish in-flight work on close.
 *
 * A Bus starts connecting when it is created and keeps reconnecting forever; `connected`
 * says whether it is connected now (readiness), and handlers registered with `serve`
 * before the first connection are subscribed as soon as it is made.
 *
 * The Bus owns the connection and its lifecycle; what it sends is its Sender's work
 * (sender.ts: requests and publishes), what it receives its Receiver's (receiver.ts: served
 * methods and subscriptions, shedding, draining). Both are private to it; the surface the
 * rest of the code needs is BusLike (bus-like.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  redactUrls,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
  type ServiceName,
  type Validator,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { natsAuthOptions, type BusAuth } from './auth.ts';
import type { BusLike } from './bus-like.ts';
import { busMetrics, type BusMetrics } from './metrics.ts';
import { Receiver } from './receiver.ts';
import { Sender, type RequestOptions } from './sender.ts';
import type { Handler } from './served-method.ts';
import type { BusSubscription, SubscriptionHandler } from './subscription.ts';

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

const FIRST_CONNECT_BACKOFF_MS = [100, 250, 500, 1000, 2000];

export class Bus implements BusLike {
  readonly #opts: BusOptions;
  readonly #log: Logger;
  readonly #caller: string;
  readonly #closing = new AbortController();
  readonly #metrics: BusMetrics | undefined;
  readonly #sender: Sender;
  readonly #receiver: Receiver;
  #nc: NatsConnection | undefined;
  #connected = false;
  #statusLoop: Promise<void> | undefined;
  readonly #connecting: Promise<void>;
  #connectedWaiters: (() => void)[] = [];
  readonly #reconnectListeners = new Set<() => void>();

  constructor(opts: BusOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'bus' });
    this.#caller = `${opts.service}/${opts.instanceId}`;
    this.#metrics =
      opts.metrics === undefined ? undefined : busMetrics(opts.metrics, () => this.#connected);
    this.#sender = new Sender({
      prefix: opts.prefix,
      caller: this.#caller,
      requestTimeoutMs: opts.requestTimeoutMs,
      log: this.#log,
      metrics: this.#metrics,
      connection: () => (this.#closing.signal.aborted ? undefined : this.#nc),
      connected: () => this.#connected,
    });
    this.#receiver = new Receiver({
      service: opts.service,
      prefix: opts.prefix,
      requestTimeoutMs: opts.requestTimeoutMs,
      maxConcurrent: opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
      log: this.#log,
      metrics: this.#metrics,
    });
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

  // The BusLike surface (documented there): what is sent is the Sender's, what is
  // received the Receiver's.

  async request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts?: RequestOptions,
  ): Promise<RpcReply<M>> {
    return await this.#sender.request(method, request, opts);
  }

  async requestSubject<S extends TSchema>(
    subject: string,
    payload: unknown,
    reply: Validator<S>,
    opts?: RequestOptions,
  ): Promise<Static<S>> {
    return await this.#sender.requestSubject(subject, payload, reply, opts);
  }

  publish(subject: string, payload: unknown, traceparent?: string): void {
    this.#sender.publish(subject, payload, traceparent);
  }

  publishMany(subject: string, messages: readonly string[]): void {
    this.#sender.publishMany(subject, messages);
  }

  async flush(signal?: AbortSignal): Promise<void> {
    await this.#sender.flush(signal);
  }

  serve<M extends RpcMethod>(method: M, handler: Handler<M>, opts?: { address?: string }): void {
    this.#receiver.serve(method, handler, opts);
  }

  subscribe<S extends TSchema>(
    subject: string,
    schema: Validator<S>,
    handler: SubscriptionHandler<S>,
    opts?: { queue?: string; vital?: boolean },
  ): BusSubscription {
    return this.#receiver.subscribe(subject, schema, handler, opts);
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
        this.#receiver.attach(nc);
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
    await this.#receiver.stopServing();
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
