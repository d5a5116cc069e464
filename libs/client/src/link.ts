/**
 * A signed-in link to the gateways that is not a room session: a host's (`hostOnline`) or a
 * caller's (`authenticate`). Seed 004's connection management, on the same parts a Session
 * uses (a Reconnector, a TokenRefresher): presence heartbeats with a read deadline,
 * reconnection with backoff across the gateway URLs, dormancy after failing for
 * `dormancyAfterMs` (until `activity()`), the token refreshed before it expires.
 *
 * What "signed in" means is the owner's `attach` step, run on each new connection; the link
 * hands every event frame that is not a reply to `onFrame`, its `d` validated against the
 * event's schema (an invalid or unknown one is reported and dropped).
 */
import {
  ClientActions,
  ProtocolError,
  ServerEvents,
  type ServerEvent,
  type ClientAction,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import { ClientCloseCodes, type Connection, type LostInfo } from './connection.ts';
import type { Listener } from './emitter.ts';
import { clientBase, type ClientBase, type GatewayOptions } from './gateway-options.ts';
import { Reconnector, type ConnectionState } from './reconnector.ts';
import { validatorOf } from './schemas.ts';
import { TokenRefresher } from './token-refresher.ts';

export type LinkState = ConnectionState;

export interface LinkOptions extends GatewayOptions {
  /** Closes the link. */
  signal?: AbortSignal;
}

export interface LinkEvents {
  state: { state: LinkState; previous: LinkState };
  retrying: { attempt: number; error: ProtocolError; retryInMs: number };
  closed: { reason: 'closed' | 'failed' | 'refused'; error?: ProtocolError };
  error: { error: Error; context: string };
}

/** How often to heartbeat on a connection, and its read deadline (the attach step says). */
export interface Liveness {
  intervalMs: number;
  readDeadlineMs: number;
}

/** Sign in on a new connection with `token`; resolves with its heartbeat settings. */
export type Attach = (conn: Connection, token: string, signal: AbortSignal) => Promise<Liveness>;

/** A reply's `d` checked against its action's schema. */
export function parseLinkReply(action: ClientAction, d: unknown): unknown {
  const schema = (ClientActions as Record<string, { reply: TSchema | undefined }>)[action]?.reply;
  if (schema === undefined) return undefined;
  const parsed = validatorOf(`reply:${action}`, schema).parse(d);
  if (!parsed.ok) {
    throw new ProtocolError('JSON_FIELD_INVALID', `${action}R from the gateway did not validate`);
  }
  return parsed.value;
}

export class SignalingLink {
  readonly #attach: Attach;
  readonly #onFrame: (frame: Record<string, unknown>) => void;
  readonly #base: ClientBase<LinkEvents>;
  readonly #reconnector: Reconnector;
  readonly #tokens: TokenRefresher;

  constructor(
    urls: string | readonly string[],
    options: LinkOptions,
    attach: Attach,
    onFrame: (frame: Record<string, unknown>) => void,
  ) {
    const gateways = typeof urls === 'string' ? [urls] : [...urls];
    if (gateways.length === 0) throw new TypeError('no gateway URL');
    this.#attach = attach;
    this.#onFrame = onFrame;
    this.#base = clientBase<LinkEvents>(options);
    this.#tokens = new TokenRefresher(options.token, this.#base, {
      connection: () => this.#reconnector.current,
    });
    this.#reconnector = new Reconnector(gateways, this.#base, {
      attach: (conn) => this.#signIn(conn),
      onFrame: (conn, frame) => {
        if (conn === this.#reconnector.conn) this.#event(frame);
      },
      onLost: (conn, info) => {
        this.#onLost(conn, info);
      },
    });
    this.#base.lc.endOn(options.signal, () => {
      this.close().catch((err: unknown) => {
        this.#base.reportError(
          err instanceof Error ? err : new Error(String(err)),
          'closing on the abort signal',
        );
      });
    });
  }

  get state(): LinkState {
    return this.#reconnector.state;
  }

  /** Aborted when the link closes. */
  get signal(): AbortSignal {
    return this.#base.lc.signal;
  }

  on<K extends keyof LinkEvents>(event: K, listener: Listener<LinkEvents[K]>): () => void {
    return this.#base.events.on(event, listener);
  }

  /** Route an error to the `error` event (`onError` when nobody listens). */
  reportError(error: Error, context: string): void {
    this.#base.reportError(error, context);
  }

  /** Connect and sign in; rejects (and closes) when that cannot be done. */
  async start(): Promise<void> {
    await this.#reconnector.start((error) => {
      this.#close({ reason: 'failed', error });
    });
  }

  /** Send a request (waiting for a connection up to its deadline) and parse its reply. */
  async request(
    action: ClientAction,
    data: unknown,
    opts: {
      signal?: AbortSignal;
      timeoutMs?: number;
      /** Told the connection and the request id it was sent with. */
      onSent?: (conn: Connection, id: number) => void;
    } = {},
  ): Promise<unknown> {
    return parseLinkReply(action, await this.#reconnector.request(action, data, opts));
  }

  /** Something happened (a user action, a network change): wake from dormancy, retry now. */
  activity(): void {
    this.#base.lc.wake();
  }

  /** Close (1000: the gateway takes it for a deliberate goodbye). */
  async close(): Promise<void> {
    await this.#reconnector.goodbye('closed', () => {
      this.#close({ reason: 'closed' });
    });
  }

  // --------------------------------------------------------------------- internals

  /** An event frame, validated, to the owner. */
  #event(frame: Record<string, unknown>): void {
    const a = frame['a'];
    if (typeof a !== 'string' || !Object.hasOwn(ServerEvents, a)) {
      this.reportError(
        new ProtocolError('UNKNOWN_ACTION', `unexpected frame ${String(a)}`),
        'frame',
      );
      return;
    }
    const parsed = validatorOf(`event:${a}`, ServerEvents[a as ServerEvent]).parse(frame['d']);
    if (!parsed.ok) {
      this.reportError(new ProtocolError('JSON_FIELD_INVALID', `${a} did not validate`), 'frame');
      return;
    }
    this.#onFrame({ a, d: parsed.value });
  }

  /**
   * Sign in; a token refused as expired gets one refresh and one more try. Then `conn` is the
   * link's.
   */
  async #signIn(conn: Connection): Promise<void> {
    const liveness = await this.#tokens.withToken(
      async (token) => await this.#attach(conn, token, this.#base.lc.signal),
    );
    if (this.#base.lc.ended()) throw new ProtocolError('CANCELLED', 'the link closed');
    this.#reconnector.adopt(conn, { ...liveness, onPong: () => undefined });
    this.#tokens.schedule();
  }

  #onLost(conn: Connection, info: LostInfo): void {
    if (!this.#reconnector.carries(conn)) return;
    // Whatever ended it (a drop, the read deadline, 4003 when the token expired): sign in
    // again, with the newest token.
    if (info.code === 1000) this.reportError(new Error(info.reason), 'the gateway closed the link');
    this.#reconnector.lost();
    this.#reconnector.reconnect((error) => {
      this.#close({ reason: 'refused', error });
    });
  }

  #close(info: LinkEvents['closed']): void {
    if (this.state === 'closed') return;
    const conn = this.#reconnector.conn;
    this.#reconnector.close();
    this.#base.lc.end();
    this.#tokens.close();
    if (info.reason !== 'closed') conn?.close(ClientCloseCodes.readDeadline, info.reason);
    this.#base.events.emit('closed', info);
  }
}
