/**
 * A signed-in link to the gateways that is not a room session: a host's (`hostOnline`) or a
 * caller's (`authenticate`). Seed 004's connection management, on the same parts a Session
 * uses (Connection, backoff, token refresh): presence heartbeats with a read deadline,
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
  RefreshTokenReply,
  ServerEvents,
  type ServerEvent,
  isProtocolError,
  validator,
  type ClientAction,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.ts';
import {
  ClientCloseCodes,
  Connection,
  type LostInfo,
  type WebSocketFactory,
} from './connection.ts';
import { Emitter, type Listener } from './emitter.ts';
import { refreshAt, tokenExpiry } from './token.ts';
import { Lifecycle, asProtocolError, defaultWebSocket, keepTrying } from './lifecycle.ts';

export type LinkState = 'connecting' | 'connected' | 'reconnecting' | 'dormant' | 'closed';

export interface LinkOptions {
  /** The bearer token (a JWT from your backend). */
  token: string;
  /** Supplies a new token before this one expires (and when a sign-in refuses it). */
  refreshToken?: (signal: AbortSignal) => Promise<string>;
  /** How long before `exp` to refresh (default 60 s; at most ½ of the remaining life). */
  tokenRefreshMarginMs?: number;
  /** Default deadline of each request (default 10 s). */
  requestTimeoutMs?: number;
  /** Deadline of opening one WebSocket and signing in on it (default 10 s). */
  connectTimeoutMs?: number;
  /** How long the first connection keeps retrying (default 30 s). */
  firstConnectRetryMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Failures in a row for this long put the link to sleep until activity() (default 5 min). */
  dormancyAfterMs?: number;
  /** Closes the link. */
  signal?: AbortSignal;
  /** Opens a WebSocket (default: the global WebSocket of browsers and Node 22). */
  WebSocket?: WebSocketFactory;
  random?: () => number;
  /** Where errors go when no `error` listener is registered (default console.error). */
  onError?: (error: Error, context: string) => void;
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

const compiled = new Map<string, ReturnType<typeof validator>>();
function replyValidator(action: string, schema: TSchema): ReturnType<typeof validator> {
  let v = compiled.get(action);
  if (v === undefined) {
    v = validator(schema);
    compiled.set(action, v);
  }
  return v;
}

const events = new Map<string, ReturnType<typeof validator>>();
function eventValidator(a: ServerEvent): ReturnType<typeof validator> {
  let v = events.get(a);
  if (v === undefined) {
    v = validator(ServerEvents[a]);
    events.set(a, v);
  }
  return v;
}

/** A reply's `d` checked against its action's schema. */
export function parseLinkReply(action: ClientAction, d: unknown): unknown {
  const schema = (ClientActions as Record<string, { reply: TSchema | undefined }>)[action]?.reply;
  if (schema === undefined) return undefined;
  const parsed = replyValidator(action, schema).parse(d);
  if (!parsed.ok) {
    throw new ProtocolError('JSON_FIELD_INVALID', `${action}R from the gateway did not validate`);
  }
  return parsed.value;
}

export class SignalingLink {
  readonly #urls: string[];
  readonly #attach: Attach;
  readonly #onFrame: (frame: Record<string, unknown>) => void;
  readonly #opts: Required<Omit<LinkOptions, 'refreshToken' | 'signal' | 'backoff' | 'token'>> & {
    refreshToken: LinkOptions['refreshToken'];
    backoff: BackoffOptions;
  };
  readonly #events: Emitter<LinkEvents>;
  readonly #lc = new Lifecycle();
  #state: LinkState = 'connecting';
  #conn: Connection | undefined;
  #urlIndex = 0;
  #token: string;
  #tokenTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    urls: string | readonly string[],
    options: LinkOptions,
    attach: Attach,
    onFrame: (frame: Record<string, unknown>) => void,
  ) {
    this.#urls = typeof urls === 'string' ? [urls] : [...urls];
    if (this.#urls.length === 0) throw new TypeError('no gateway URL');
    this.#attach = attach;
    this.#onFrame = onFrame;
    this.#token = options.token;
    this.#opts = {
      refreshToken: options.refreshToken,
      tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 60_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      firstConnectRetryMs: options.firstConnectRetryMs ?? 30_000,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
      dormancyAfterMs: options.dormancyAfterMs ?? 5 * 60_000,
      WebSocket: options.WebSocket ?? defaultWebSocket,
      random: options.random ?? Math.random,
      onError:
        options.onError ??
        ((error, context) => {
          console.error(`switchboard client: ${context}:`, error);
        }),
    };
    this.#events = new Emitter<LinkEvents>((err, event) => {
      const error = err instanceof Error ? err : new Error(String(err));
      if (event === 'error') this.#opts.onError(error, 'an error listener threw');
      else this.reportError(error, `a listener of ${event} threw`);
    });
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.#lc.end();
      signal.addEventListener(
        'abort',
        () => {
          void this.close();
        },
        { once: true, signal: this.#lc.signal },
      );
    }
  }

  get state(): LinkState {
    return this.#state;
  }

  /** Aborted when the link closes. */
  get signal(): AbortSignal {
    return this.#lc.signal;
  }

  on<K extends keyof LinkEvents>(event: K, listener: Listener<LinkEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  /** Connect and sign in; rejects (and closes) when that cannot be done. */
  async start(): Promise<void> {
    try {
      await this.#establish(true);
    } catch (err) {
      const error = asProtocolError(err);
      this.#close({ reason: 'failed', error });
      throw error;
    }
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
    const timeoutMs = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const conn = await this.#connected(action, deadline, opts.signal);
    const onSent = opts.onSent;
    const d = await conn.request(action, data, {
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
    return parseLinkReply(action, d);
  }

  /** Something happened (a user action, a network change): wake from dormancy, retry now. */
  activity(): void {
    this.#lc.wake();
  }

  /** Close (1000: the gateway takes it for a deliberate goodbye). */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#close({ reason: 'closed' });
    await conn?.closeAndWait(ClientCloseCodes.normal, 'closed', 1000);
  }

  reportError(error: Error, context: string): void {
    if (this.#events.listenerCount('error') > 0) this.#events.emit('error', { error, context });
    else this.#opts.onError(error, context);
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
    const parsed = eventValidator(a as ServerEvent).parse(frame['d']);
    if (!parsed.ok) {
      this.reportError(new ProtocolError('JSON_FIELD_INVALID', `${a} did not validate`), 'frame');
      return;
    }
    this.#onFrame({ a, d: parsed.value });
  }

  async #establish(first: boolean): Promise<void> {
    await keepTrying(this.#lc, {
      first,
      firstConnectRetryMs: this.#opts.firstConnectRetryMs,
      dormancyAfterMs: this.#opts.dormancyAfterMs,
      backoff: this.#opts.backoff,
      random: this.#opts.random,
      attempt: async () => {
        const url = this.#urls[this.#urlIndex % this.#urls.length] ?? '';
        let conn: Connection | undefined;
        try {
          const opened: Connection = await Connection.open(
            url,
            this.#opts.WebSocket,
            {
              onFrame: (frame) => {
                if (opened === this.#conn) this.#event(frame);
              },
              onLost: (info) => {
                this.#onLost(opened, info);
              },
            },
            { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#lc.signal },
          );
          conn = opened;
          const liveness = await this.#signIn(opened);
          if (this.#ended()) throw new ProtocolError('CANCELLED', 'the link closed');
          this.#conn = opened;
          opened.startHeartbeat({ ...liveness, onPong: () => undefined });
          this.#setState('connected');
          this.#scheduleTokenRefresh();
          this.#lc.changed();
        } catch (err) {
          conn?.close(ClientCloseCodes.readDeadline, 'abandoned');
          this.#urlIndex++;
          throw err;
        }
      },
      retrying: (info) => {
        this.#events.emit('retrying', info);
      },
      dormant: (asleep) => {
        this.#setState(asleep ? 'dormant' : 'reconnecting');
      },
    });
  }

  /** Sign in; a token refused as expired gets one refresh and one more try. */
  async #signIn(conn: Connection): Promise<Liveness> {
    try {
      return await this.#attach(conn, this.#token, this.#lc.signal);
    } catch (err) {
      if (!(isProtocolError(err) && err.errorName === 'AUTH_FAILED')) throw err;
      if (this.#opts.refreshToken === undefined) throw err;
      await this.#newToken();
      return await this.#attach(conn, this.#token, this.#lc.signal);
    }
  }

  #onLost(conn: Connection, info: LostInfo): void {
    if (conn !== this.#conn || this.#state === 'closed') return;
    this.#conn = undefined;
    // Whatever ended it (a drop, the read deadline, 4003 when the token expired): sign in
    // again, with the newest token.
    if (info.code === 1000) this.reportError(new Error(info.reason), 'the gateway closed the link');
    this.#urlIndex++;
    this.#setState('reconnecting');
    this.#establish(false).catch((err: unknown) => {
      if (this.#state === 'closed') return;
      this.#close({ reason: 'refused', error: asProtocolError(err) });
    });
  }

  async #connected(action: string, deadline: number, signal?: AbortSignal): Promise<Connection> {
    return await this.#lc.until(
      () => {
        const conn = this.#conn;
        return this.#state === 'connected' && conn !== undefined && !conn.lost ? conn : undefined;
      },
      action,
      deadline,
      signal,
    );
  }

  async #sleep(ms: number | undefined): Promise<void> {
    await this.#lc.sleep(ms);
  }

  #ended(): boolean {
    return this.#lc.ended();
  }

  #setState(state: LinkState): void {
    const previous = this.#state;
    if (previous === state || previous === 'closed') return;
    this.#state = state;
    this.#events.emit('state', { state, previous });
  }

  #close(info: LinkEvents['closed']): void {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#setState('closed');
    this.#lc.end();
    clearTimeout(this.#tokenTimer);
    if (info.reason !== 'closed') conn?.close(ClientCloseCodes.readDeadline, info.reason);
    this.#events.emit('closed', info);
  }

  // ------------------------------------------------------------------------ tokens

  #scheduleTokenRefresh(): void {
    clearTimeout(this.#tokenTimer);
    if (this.#opts.refreshToken === undefined || this.#state === 'closed') return;
    const exp = tokenExpiry(this.#token);
    if (exp === undefined) return;
    const now = Date.now();
    this.#tokenTimer = setTimeout(
      () => {
        this.#refresh().catch((err: unknown) => {
          this.reportError(asProtocolError(err), 'token refresh');
        });
      },
      refreshAt(exp, now, this.#opts.tokenRefreshMarginMs) - now,
    );
  }

  /** A new token from the owner's callback (retried with backoff until it comes). */
  async #newToken(): Promise<void> {
    const refresh = this.#opts.refreshToken;
    if (refresh === undefined) return;
    for (let attempt = 0; ; attempt++) {
      const signal = AbortSignal.any([
        this.#lc.signal,
        AbortSignal.timeout(this.#opts.requestTimeoutMs),
      ]);
      try {
        const token: unknown = await refresh(signal);
        if (typeof token !== 'string' || token === '') {
          throw new ProtocolError('AUTH_FAILED', 'refreshToken returned no token');
        }
        this.#token = token;
        return;
      } catch (err) {
        if (this.#ended()) throw new ProtocolError('CANCELLED', 'the link closed');
        this.reportError(err instanceof Error ? err : new Error(String(err)), 'token refresh');
        await this.#sleep(backoffDelay(attempt, this.#opts.backoff, this.#opts.random));
      }
    }
  }

  /** Refresh the token and present it on the connection (`refreshToken`). */
  async #refresh(): Promise<void> {
    try {
      await this.#newToken();
      const conn = this.#conn;
      if (this.#state !== 'connected' || conn === undefined || conn.lost) return;
      const d = await conn.request(
        'refreshToken',
        { bearer: this.#token },
        { timeoutMs: this.#opts.requestTimeoutMs, signal: this.#lc.signal },
      );
      parseReply(d);
    } finally {
      this.#scheduleTokenRefresh();
    }
  }
}

const refreshReply = validator(RefreshTokenReply);
function parseReply(d: unknown): Static<typeof RefreshTokenReply> {
  const parsed = refreshReply.parse(d);
  if (!parsed.ok) throw new ProtocolError('JSON_FIELD_INVALID', 'refreshTokenR did not validate');
  return parsed.value;
}
