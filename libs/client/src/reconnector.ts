/**
 * Keeps its owner — a room Session, a SignalingLink — on one connection to a gateway: opens
 * connections, rotating through the gateway URLs given, until the owner's attach step (a join,
 * a sign-in) takes one, with backoff and jitter between tries and dormancy after failing for
 * `dormancyAfterMs` (keepTrying); requests wait for the connection while it is being
 * re-established.
 *
 * It decides nothing about a lost connection: the owner hears of each one (`onLost`) and
 * either closes or calls `lost()` and `reconnect()`.
 */
import type { ProtocolError } from '@switchboard/protocol';
import { ClientCloseCodes, Connection, type Heartbeat, type LostInfo } from './connection.ts';
import type { GatewayOwner } from './gateway-options.ts';
import { asProtocolError, keepTrying } from './lifecycle.ts';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'dormant' | 'closed';

export interface ReconnectorEvents {
  state: { state: ConnectionState; previous: ConnectionState };
  /** A try to connect failed; the next one follows after `retryInMs`. */
  retrying: { attempt: number; error: ProtocolError; retryInMs: number };
}

/** The owner's emitter: the reconnector's events are the owner's. */
export interface ReconnectorEventSink {
  emit<K extends keyof ReconnectorEvents>(event: K, value: ReconnectorEvents[K]): void;
}

export interface ReconnectorHandlers {
  /** Take `conn` (join, sign in) and `adopt()` it; throws to abandon it. */
  attach(conn: Connection): Promise<void>;
  /** A frame of `conn` that is not a reply (from its opening on, adopted or not). */
  onFrame(conn: Connection, frame: Record<string, unknown>): void;
  /** `conn` ended (each connection once, adopted or not). */
  onLost(conn: Connection, info: LostInfo): void;
}

export class Reconnector {
  readonly #urls: readonly string[];
  readonly #owner: GatewayOwner;
  readonly #handlers: ReconnectorHandlers;
  #state: ConnectionState = 'connecting';
  #conn: Connection | undefined;
  #urlIndex = 0;

  /** `urls`: at least one. */
  constructor(urls: readonly string[], owner: GatewayOwner, handlers: ReconnectorHandlers) {
    this.#urls = urls;
    this.#owner = owner;
    this.#handlers = handlers;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The connection adopted last (lost or not). */
  get conn(): Connection | undefined {
    return this.#conn;
  }

  /** The connection, while connected. */
  get current(): Connection | undefined {
    const conn = this.#conn;
    return this.#state === 'connected' && conn !== undefined && !conn.lost ? conn : undefined;
  }

  /** The gateway URL of the current (or last) connection. */
  get url(): string {
    return this.#conn?.url ?? this.#urls[this.#urlIndex % this.#urls.length] ?? '';
  }

  /**
   * The first connection: resolves once attached; rejects when it cannot be made (a refusal
   * no retry mends, or nothing after firstConnectRetryMs), `failed` told first.
   */
  async start(failed: (error: ProtocolError) => void): Promise<void> {
    try {
      await this.#establish(true);
    } catch (err) {
      const error = asProtocolError(err);
      failed(error);
      throw error;
    }
  }

  /** `conn` carries the owner from now on: heartbeats on it, connected, waits looking again. */
  adopt(conn: Connection, heartbeat: Heartbeat): void {
    this.#conn = conn;
    conn.startHeartbeat(heartbeat);
    this.#setState('connected');
    this.#owner.lc.changed();
  }

  /** Whether `conn` is the connection carrying the owner, which is not closed. */
  carries(conn: Connection): boolean {
    return conn === this.#conn && this.#state !== 'closed';
  }

  /** The owner's connection was lost and it wants another one: reconnecting. */
  lost(): void {
    // The gateway that dropped it is the suspect: the next URL is tried first.
    this.#urlIndex++;
    this.#setState('reconnecting');
  }

  /**
   * Open connections until one is attached again (dormant after failing for long);
   * `refused` when that cannot be (a refusal no retry mends) and the owner is not closed.
   */
  reconnect(refused: (error: ProtocolError) => void): void {
    this.#establish(false).catch((err: unknown) => {
      if (this.#state === 'closed') return;
      refused(asProtocolError(err));
    });
  }

  /** The connection, once connected; waits up to `deadline` while reconnecting. */
  async connected(action: string, deadline: number, signal?: AbortSignal): Promise<Connection> {
    return await this.#owner.lc.until(() => this.current, action, deadline, signal);
  }

  /** Send a request (waiting for a connection up to its deadline); resolves with its `d`. */
  async request(
    action: string,
    data: unknown,
    opts: {
      signal?: AbortSignal | undefined;
      timeoutMs?: number | undefined;
      /** Told the connection and the request id it was sent with. */
      onSent?: ((conn: Connection, id: number) => void) | undefined;
    },
  ): Promise<unknown> {
    const timeoutMs = opts.timeoutMs ?? this.#owner.settings.requestTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const conn = await this.connected(action, deadline, opts.signal);
    const onSent = opts.onSent;
    return await conn.request(action, data, {
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: opts.signal,
      ...(onSent === undefined
        ? {}
        : {
            onId: (id: number) => {
              onSent(conn, id);
            },
          }),
    });
  }

  /** The owner closed: the state says so, for good. */
  close(): void {
    this.#setState('closed');
  }

  /**
   * The owner's goodbye: `close` it, then close its connection with 1000 (which the gateway
   * takes for a deliberate end) and wait (at most 1 s) for the gateway to see it.
   */
  async goodbye(reason: string, close: () => void): Promise<void> {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    close();
    await conn?.closeAndWait(ClientCloseCodes.normal, reason, 1000);
  }

  /**
   * Open connections until one is attached. `first`: never connected yet (no dormancy; gives
   * up after firstConnectRetryMs).
   */
  async #establish(first: boolean): Promise<void> {
    const s = this.#owner.settings;
    await keepTrying(this.#owner.lc, {
      first,
      firstConnectRetryMs: s.firstConnectRetryMs,
      dormancyAfterMs: s.dormancyAfterMs,
      backoff: s.backoff,
      random: s.random,
      attempt: async () => {
        const url = this.#urls[this.#urlIndex % this.#urls.length] ?? '';
        let conn: Connection | undefined;
        try {
          conn = await this.#open(url);
          await this.#handlers.attach(conn);
        } catch (err) {
          conn?.close(ClientCloseCodes.readDeadline, 'abandoned');
          // The next try goes to the next gateway.
          this.#urlIndex++;
          throw err;
        }
      },
      retrying: (info) => {
        this.#owner.events.emit('retrying', info);
      },
      dormant: (asleep) => {
        this.#setState(asleep ? 'dormant' : 'reconnecting');
      },
    });
  }

  async #open(url: string): Promise<Connection> {
    const conn: Connection = await Connection.open(
      url,
      this.#owner.settings.WebSocket,
      {
        onFrame: (frame) => {
          this.#handlers.onFrame(conn, frame);
        },
        onLost: (info) => {
          this.#handlers.onLost(conn, info);
        },
      },
      { timeoutMs: this.#owner.settings.connectTimeoutMs, signal: this.#owner.lc.signal },
    );
    return conn;
  }

  #setState(state: ConnectionState): void {
    const previous = this.#state;
    if (previous === state || previous === 'closed') return;
    this.#state = state;
    this.#owner.events.emit('state', { state, previous });
  }
}
