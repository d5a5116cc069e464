/**
 * A Session is one member's place in a room, kept alive across connections:
 *
 * - `connect()` opens a WebSocket to a gateway and joins; the returned session then outlives
 *   every drop. A dropped connection is followed by a new one (exponential backoff with
 *   jitter, rotating through the gateway URLs given) that **resumes** the session with
 *   `reconnect {socketId}` while the server's window holds it — nothing else happens, the
 *   media keeps flowing — or **rejoins** (a new socketId: `rejoined`, on which the media layer
 *   recreates its transports and publishes again) once the window has passed.
 * - After `dormancyAfterMs` of failures in a row it goes **dormant** and stops trying until
 *   `activity()` is called or the browser reports it is online again.
 * - Heartbeats (`ping`) every `heartbeatIntervalMs`; a connection silent past
 *   2 × interval + grace is taken for dead (a half-open TCP connection never closes itself).
 * - The token is refreshed through `refreshToken` before it expires (and when a rejoin is
 *   refused with AUTH_FAILED); every later join presents the fresh one.
 * - Requests are typed from libs/protocol, take an AbortSignal and a timeout, and wait for
 *   the connection when it is being re-established. Server events come as typed listeners and
 *   as async iterators; every frame is validated before it is handed out.
 * - Server-to-client requests go to handlers registered with `handle()`.
 *
 * No error is lost and none escapes: each one is either the rejection of the call that caused
 * it or an `error` event (console.error when nobody listens).
 */
import {
  CloseCodes,
  ClientActions,
  JoinReply,
  MediaActions,
  MediaEvents,
  ProtocolError,
  ReconnectReply,
  RefreshTokenReply,
  ServerEvents,
  isProtocolError,
  isServerRequest,
  serverRequestData,
  serverRequestFrame,
  serverRequestReply,
  validator,
  type ClientAction,
  type ClientNotification,
  type ClientNotifications,
  type JoinData,
  type Member,
  type MediaAction,
  type MediaEvent,
  type ServerEvent,
  type ServerEventData,
  type ServerRequest,
  type ServerRequestData,
  type ServerRequestReply,
  type Validator,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.ts';
import {
  ClientCloseCodes,
  Connection,
  type LostInfo,
  type WebSocketFactory,
} from './connection.ts';
import { Emitter, type IterateOptions, type Listener } from './emitter.ts';
import { refreshAt, tokenExpiry } from './token.ts';
import { Lifecycle, asProtocolError, defaultWebSocket, keepTrying } from './lifecycle.ts';

// ------------------------------------------------------------------------------ types

type Actions = typeof ClientActions & typeof MediaActions;
/** What `request()` sends: every client action but those the session itself speaks. */
export type SessionAction =
  Exclude<ClientAction, 'join' | 'reconnect' | 'ping' | 'refreshToken'> | MediaAction;
export type ActionData<A extends SessionAction> = Static<Actions[A]['data']>;
export type ActionReply<A extends SessionAction> = Actions[A]['reply'] extends TSchema
  ? Static<Actions[A]['reply']>
  : undefined;

/** The events a session emits (eventBatch is unpacked: its events come one by one). */
export type RoomEventName = Exclude<ServerEvent, 'eventBatch'> | MediaEvent;
export type RoomEvents = { [E in Exclude<ServerEvent, 'eventBatch'>]: ServerEventData<E> } & {
  [E in MediaEvent]: Static<(typeof MediaEvents)[E]>;
};

export type SessionState = 'connecting' | 'connected' | 'reconnecting' | 'dormant' | 'closed';

export interface CloseInfo {
  /**
   * left: `leave()` (or the signal); replaced: the session was taken over by another
   * connection (4001); refused: a rejoin was refused for good (token, room full…);
   * failed: the first connect never succeeded; removed: the server API removed the member
   * (4004) or deleted the room (4005), `message` saying why.
   */
  reason: 'left' | 'replaced' | 'refused' | 'failed' | 'removed';
  error?: ProtocolError;
  /** The server's close reason (removed). */
  message?: string;
}

export interface SessionEvents extends RoomEvents {
  state: { state: SessionState; previous: SessionState };
  /** The connection dropped; the session is being re-established. */
  disconnected: { code: number; reason: string };
  /** The same session is back on a new connection (inside the server's window). */
  resumed: { socketId: string; roomSize: number; offlineMs: number; url: string };
  /** The window had passed: the session joined again, with a new socketId. */
  rejoined: {
    socketId: string;
    previousSocketId: string;
    join: JoinReply;
    offlineMs: number;
    url: string;
  };
  /** A try to re-establish the session failed; the next one follows after `retryInMs`. */
  retrying: { attempt: number; error: ProtocolError; retryInMs: number };
  token: { expiresAt: number | undefined };
  closed: CloseInfo;
  error: { error: Error; context: string };
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Deadline of this request, waiting for a connection included (default requestTimeoutMs). */
  timeoutMs?: number;
}

export interface ServerRequestContext {
  /** Fires when the server gave up (its deadline, or the connection is gone). */
  signal: AbortSignal;
  /** The server's request number on this connection. */
  sid: number;
}
export type ServerRequestHandler<M extends ServerRequest> = (
  data: ServerRequestData<M>,
  ctx: ServerRequestContext,
) => ServerRequestReply<M> | Promise<ServerRequestReply<M>>;

export interface ConnectOptions {
  /** The room to join. */
  room: string;
  /** The bearer token (a JWT from your backend). */
  token: string;
  /** Supplies a new token before this one expires, and when a rejoin refuses it. */
  refreshToken?: (signal: AbortSignal) => Promise<string>;
  /** How long before `exp` to refresh (default 60 s; at most ¾ of the remaining life). */
  tokenRefreshMarginMs?: number;
  /** What `join` tells about this device (`platform` defaults to "web" or "node"). */
  device?: Partial<Omit<JoinData, 'roomId' | 'bearer'>>;
  /** Default deadline of each request (default 10 s). */
  requestTimeoutMs?: number;
  /** Deadline of opening one WebSocket and joining on it (default 10 s). */
  connectTimeoutMs?: number;
  /** How long `connect()` keeps retrying a gateway that cannot be reached (default 30 s). */
  firstConnectRetryMs?: number;
  /** Heartbeat period (default 10 s). */
  heartbeatIntervalMs?: number;
  /** Added to 2 × heartbeatIntervalMs for the read deadline (default 5 s). */
  readDeadlineGraceMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Failures in a row for this long put the session to sleep (default 5 min). */
  dormancyAfterMs?: number;
  /** Closes the session (as `leave()`). */
  signal?: AbortSignal;
  /** Opens a WebSocket (default: the global WebSocket of browsers and Node 22). */
  WebSocket?: WebSocketFactory;
  /** [0, 1) random numbers for the jitter (tests). */
  random?: () => number;
  /** Where errors go when no `error` listener is registered (default console.error). */
  onError?: (error: Error, context: string) => void;
}

interface Options {
  room: string;
  refreshToken: ((signal: AbortSignal) => Promise<string>) | undefined;
  tokenRefreshMarginMs: number;
  device: Omit<JoinData, 'roomId' | 'bearer'>;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  firstConnectRetryMs: number;
  heartbeatIntervalMs: number;
  readDeadlineGraceMs: number;
  backoff: BackoffOptions;
  dormancyAfterMs: number;
  WebSocket: WebSocketFactory;
  random: () => number;
  onError: (error: Error, context: string) => void;
}

// --------------------------------------------------------------------- validators

/** Compiled on first use: a browser page pays only for the schemas it meets. */
const compiled = new Map<string, Validator<TSchema>>();
function validatorOf(key: string, schema: TSchema): Validator<TSchema> {
  let v = compiled.get(key);
  if (v === undefined) {
    v = validator(schema);
    compiled.set(key, v);
  }
  return v;
}

function eventSchema(a: string): TSchema | undefined {
  if (Object.hasOwn(ServerEvents, a)) return ServerEvents[a as ServerEvent];
  if (Object.hasOwn(MediaEvents, a)) return MediaEvents[a as MediaEvent];
  return undefined;
}

function parseReply(action: string, schema: TSchema | undefined, d: unknown): unknown {
  if (schema === undefined) return undefined;
  const parsed = validatorOf(`reply:${action}`, schema).parse(d);
  if (!parsed.ok) {
    throw new ProtocolError(
      'SYSTEM',
      `${action}R does not match its schema: ${parsed.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
    );
  }
  return parsed.value;
}

/** 32 random bytes, base64url: a resume token this client proposes. */
function randomToken(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(32));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// ------------------------------------------------------------------------ session

export class Session {
  readonly roomId: string;
  readonly #urls: string[];
  readonly #opts: Options;
  readonly #events: Emitter<SessionEvents>;
  readonly #handlers = new Map<ServerRequest, ServerRequestHandler<ServerRequest>>();
  /** Server requests being handled, by sid (aborted by eventRequestCancelled or a drop). */
  readonly #serving = new Map<number, AbortController>();
  /** Aborted by close(): every wait and timer of the session ends with it. */
  readonly #lc = new Lifecycle();
  readonly #closedPromise: Promise<CloseInfo>;
  #resolveClosed!: (info: CloseInfo) => void;
  #state: SessionState = 'connecting';
  #conn: Connection | undefined;
  #urlIndex = 0;
  #token: string;
  #tokenTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<void> | undefined;
  #clockOffsetMs = 0;
  #socketId: string | undefined;
  /**
   * The secret that resumes the session (rotated by every reconnect; never shown): one, or
   * after a reconnect that got no reply, the tokens the server may hold, likeliest first.
   */
  #resumeTokens: string[] = [];
  /** The token the server holds for the session (a fresher #token is sent on reconnect). */
  #tokenOnServer: string | undefined;
  #join: JoinReply | undefined;
  #offlineSince = 0;
  readonly #onOnline = (): void => {
    this.activity();
  };

  /** Use `connect()`. */
  constructor(urls: string | readonly string[], options: ConnectOptions) {
    this.#urls = typeof urls === 'string' ? [urls] : [...urls];
    if (this.#urls.length === 0) throw new TypeError('connect: no gateway URL');
    this.roomId = options.room;
    this.#token = options.token;
    const isBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
    this.#opts = {
      room: options.room,
      refreshToken: options.refreshToken,
      tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 60_000,
      device: { platform: isBrowser ? 'web' : 'node', ...options.device },
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      firstConnectRetryMs: options.firstConnectRetryMs ?? 30_000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
      readDeadlineGraceMs: options.readDeadlineGraceMs ?? 5000,
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
    this.#events = new Emitter<SessionEvents>((err, event) => {
      const error = err instanceof Error ? err : new Error(String(err));
      if (event === 'error') this.#opts.onError(error, 'an error listener threw');
      else this.#reportError(error, `a listener of ${event} threw`);
    });
    this.#closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.#lc.end();
      signal.addEventListener(
        'abort',
        () => {
          void this.leave();
        },
        { once: true, signal: this.#lc.signal },
      );
    }
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void };
    target.addEventListener?.('online', this.#onOnline);
  }

  // ----------------------------------------------------------------- public surface

  get state(): SessionState {
    return this.#state;
  }

  /** This session's socketId (changes on a rejoin). */
  get socketId(): string {
    if (this.#socketId === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#socketId;
  }

  /** The reply of the latest join (a rejoin replaces it). */
  get joinReply(): JoinReply {
    if (this.#join === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#join;
  }

  /**
   * Every other member of the room as of now: joinR's, and the further pages of a room
   * bigger than one reply lists (listMembers). Later eventJoin/eventLeave/eventRoomState
   * keep a list current.
   */
  async members(opts: RequestOptions = {}): Promise<Member[]> {
    const first = this.joinReply;
    const all = [...first.sessions];
    for (let next = first.sessionsNext; next !== undefined;) {
      const page = await this.request('listMembers', { after: next }, opts);
      all.push(...page.sessions);
      next = page.next;
    }
    return all;
  }

  /** The token joins present now. */
  get token(): string {
    return this.#token;
  }

  /** The gateway URL of the current (or last) connection. */
  get url(): string {
    return this.#conn?.url ?? this.#urls[this.#urlIndex % this.#urls.length] ?? '';
  }

  /** The gateway's clock minus this one's, ms (from the heartbeats). */
  get clockOffsetMs(): number {
    return this.#clockOffsetMs;
  }

  /** Resolves once the session is closed, with why (never rejects). */
  get closed(): Promise<CloseInfo> {
    return this.#closedPromise;
  }

  on<K extends keyof SessionEvents>(event: K, listener: Listener<SessionEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  async once<K extends keyof SessionEvents>(
    event: K,
    signal?: AbortSignal,
  ): Promise<SessionEvents[K]> {
    return await this.#events.once(event, signal);
  }

  /** `event` as an async iterator (ends with `opts.signal`, or when the session closes). */
  events<K extends keyof SessionEvents>(
    event: K,
    opts: IterateOptions = {},
  ): AsyncIterableIterator<SessionEvents[K]> {
    const signal =
      opts.signal === undefined ? this.#lc.signal : AbortSignal.any([opts.signal, this.#lc.signal]);
    return this.#events.iterate(event, { ...opts, signal });
  }

  /** Send a request and wait for its typed reply. Rejects with a ProtocolError. */
  async request<A extends SessionAction>(
    action: A,
    data: ActionData<A>,
    opts: RequestOptions = {},
  ): Promise<ActionReply<A>> {
    const timeoutMs = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const conn = await this.#connected(action, deadline, opts.signal);
    const d = await conn.request(action, data, {
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: opts.signal,
    });
    const spec =
      (ClientActions as Record<string, { reply: TSchema | undefined }>)[action] ??
      (MediaActions as Record<string, { reply: TSchema | undefined }>)[action];
    return parseReply(action, spec?.reply, d) as ActionReply<A>;
  }

  /** Send a notification (no reply): throws SERVICE_UNAVAILABLE while disconnected. */
  notify<N extends ClientNotification>(
    kind: N,
    data: Static<(typeof ClientNotifications)[N]>,
  ): void {
    const conn = this.#conn;
    if (this.#state !== 'connected' || conn === undefined) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', `${kind}: not connected`);
    }
    conn.send({ a: kind, d: data });
  }

  /** Answer the server's `method` requests; returns the function that stops answering. */
  handle<M extends ServerRequest>(method: M, handler: ServerRequestHandler<M>): () => void {
    this.#handlers.set(method, handler);
    return () => {
      if (this.#handlers.get(method) === (handler as unknown)) this.#handlers.delete(method);
    };
  }

  /** Something happened (user input, a network change): wake from dormancy, retry now. */
  activity(): void {
    this.#lc.wake();
  }

  /** Leave the room (close 1000: the session ends at once on the server). */
  async leave(): Promise<void> {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#close({ reason: 'left' });
    await conn?.closeAndWait(ClientCloseCodes.normal, 'leave', 1000);
  }

  // --------------------------------------------------------------- establishing

  /** The first join: resolves when joined; rejects (and closes) when it cannot be. */
  async start(): Promise<void> {
    try {
      await this.#establish(true);
    } catch (err) {
      const error = asProtocolError(err);
      this.#close({ reason: 'failed', error });
      throw error;
    }
  }

  /**
   * Open connections until one resumes or joins the session. `first`: no session yet (no
   * dormancy; gives up after firstConnectRetryMs).
   */
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
          conn = await this.#open(url);
          await this.#attachSession(conn);
        } catch (err) {
          conn?.close(ClientCloseCodes.readDeadline, 'abandoned');
          // The next try goes to the next gateway.
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

  async #open(url: string): Promise<Connection> {
    const conn: Connection = await Connection.open(
      url,
      this.#opts.WebSocket,
      {
        onFrame: (frame) => {
          this.#onFrame(conn, frame);
        },
        onLost: (info) => {
          this.#onLost(conn, info);
        },
      },
      { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#lc.signal },
    );
    return conn;
  }

  /** Resume the session on `conn`, or join anew; then `conn` is the session's. */
  async #attachSession(conn: Connection): Promise<void> {
    const timeout = { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#lc.signal };
    const previous = this.#socketId;
    if (previous !== undefined) {
      try {
        const r = await this.#resume(conn, previous, timeout);
        this.#adopt(conn);
        this.#events.emit('resumed', {
          socketId: previous,
          roomSize: r.roomSize,
          offlineMs: Date.now() - this.#offlineSince,
          url: conn.url,
        });
        return;
      } catch (err) {
        // The window has passed (or the session was ended: its token expired, 4003), or the
        // resume was refused (the last rotation's reply was lost, or the token has expired):
        // join again on this connection.
        if (!(
          isProtocolError(err) &&
          (err.errorName === 'SOCKET_ID_DOES_NOT_EXIST' || err.errorName === 'AUTH_FAILED')
        )) {
          throw err;
        }
      }
    }
    const join = await this.#joinOn(conn);
    this.#socketId = join.socketId;
    this.#resumeTokens = [join.resumeToken];
    this.#join = join;
    this.#adopt(conn);
    if (previous !== undefined) {
      this.#events.emit('rejoined', {
        socketId: join.socketId,
        previousSocketId: previous,
        join,
        offlineMs: Date.now() - this.#offlineSince,
        url: conn.url,
      });
    }
  }

  /**
   * `reconnect` with the session's resume token, proposing the next one. When an earlier
   * reconnect got no reply, the server holds either the token it was sent or the one it
   * proposed: both are kept, the proposal tried first (a refused one is dropped).
   */
  async #resume(
    conn: Connection,
    socketId: string,
    timeout: { timeoutMs: number; signal: AbortSignal },
  ): Promise<Static<typeof ReconnectReply>> {
    let refused: unknown = new ProtocolError('AUTH_FAILED', 'no resume token');
    for (const resumeToken of [...this.#resumeTokens]) {
      const token = this.#token;
      const next = randomToken();
      let d: unknown;
      try {
        d = await conn.request(
          'reconnect',
          {
            socketId,
            resumeToken,
            nextResumeToken: next,
            // A token refreshed while the session was away goes with it.
            ...(token === this.#tokenOnServer ? {} : { bearer: token }),
            // The gateway may be another one than the join's: it is told again.
            batchEvents: true,
          },
          timeout,
        );
      } catch (err) {
        if (isProtocolError(err) && err.errorName === 'AUTH_FAILED') {
          // Answered: the server does not hold this one (and did not take `next`).
          this.#resumeTokens = this.#resumeTokens.filter((t) => t !== resumeToken);
          refused = err;
          continue;
        }
        // Maybe no answer came: the server holds `resumeToken` or, if it took it, `next`.
        this.#resumeTokens = [next, ...this.#resumeTokens].slice(0, 4);
        throw err;
      }
      const r = parseReply('reconnect', ReconnectReply, d) as Static<typeof ReconnectReply>;
      this.#resumeTokens = [r.resumeToken];
      this.#tokenOnServer = token;
      return r;
    }
    throw refused;
  }

  async #joinOn(conn: Connection): Promise<JoinReply> {
    const join = async (): Promise<JoinReply> => {
      const token = this.#token;
      const d = await conn.request(
        'join',
        // batchEvents: a big room's broadcasts may come several in one eventBatch frame.
        { ...this.#opts.device, roomId: this.roomId, bearer: token, batchEvents: true },
        { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#lc.signal },
      );
      const reply = parseReply('join', JoinReply, d) as JoinReply;
      this.#tokenOnServer = token;
      return reply;
    };
    try {
      return await join();
    } catch (err) {
      // A token that expired while the session was away: one fresh token, one more try.
      if (!(isProtocolError(err) && err.errorName === 'AUTH_FAILED')) throw err;
      if (this.#opts.refreshToken === undefined) throw err;
      await this.#refreshToken();
      return await join();
    }
  }

  /** `conn` carries the session from now on. */
  #adopt(conn: Connection): void {
    this.#conn = conn;
    const intervalMs = this.#opts.heartbeatIntervalMs;
    conn.startHeartbeat({
      intervalMs,
      readDeadlineMs: 2 * intervalMs + this.#opts.readDeadlineGraceMs,
      onPong: (serverNow, rttMs) => {
        this.#clockOffsetMs = Math.round(serverNow + rttMs / 2 - Date.now());
      },
    });
    this.#setState('connected');
    this.#scheduleTokenRefresh();
    this.#lc.changed();
  }

  #onLost(conn: Connection, info: LostInfo): void {
    // Abort the handlers of server requests that came on it: their replies cannot go back.
    for (const [sid, ac] of this.#serving) {
      ac.abort(new ProtocolError('CANCELLED', 'connection lost'));
      this.#serving.delete(sid);
    }
    if (conn !== this.#conn || this.#state === 'closed') return;
    if (info.code === CloseCodes.replaced) {
      this.#close({
        reason: 'replaced',
        error: new ProtocolError('SOCKET_ID_DOES_NOT_EXIST', 'the session was taken over'),
      });
      return;
    }
    if (info.code === CloseCodes.removed || info.code === CloseCodes.roomDeleted) {
      // The server API ended the session: rejoining on our own would undo what it did.
      this.#close({
        reason: 'removed',
        message: info.reason,
        error: new ProtocolError('SOCKET_ID_DOES_NOT_EXIST', info.reason),
      });
      return;
    }
    this.#offlineSince = Date.now();
    // The gateway that dropped the session is the suspect: the next URL is tried first.
    this.#urlIndex++;
    this.#setState('reconnecting');
    this.#events.emit('disconnected', { code: info.code, reason: info.reason });
    // 4002: the session expired on the server; the reconnect answers SOCKET_ID_DOES_NOT_EXIST
    // and the session joins again, which is what it needs.
    this.#establish(false).catch((err: unknown) => {
      if (this.#state === 'closed') return;
      const error = asProtocolError(err);
      this.#close({ reason: 'refused', error });
    });
  }

  /** Sleep `ms` (undefined: until woken); activity() and close() cut it short. */
  async #sleep(ms: number | undefined): Promise<void> {
    await this.#lc.sleep(ms);
  }

  /** The connection, once connected; waits up to `deadline` while reconnecting. */
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

  #setState(state: SessionState): void {
    const previous = this.#state;
    if (previous === state || previous === 'closed') return;
    this.#state = state;
    this.#events.emit('state', { state, previous });
  }

  #close(info: CloseInfo): void {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#setState('closed');
    this.#lc.end();
    clearTimeout(this.#tokenTimer);
    const target = globalThis as { removeEventListener?: (t: string, f: () => void) => void };
    target.removeEventListener?.('online', this.#onOnline);
    if (info.reason !== 'left') conn?.close(ClientCloseCodes.readDeadline, info.reason);
    this.#events.emit('closed', info);
    this.#resolveClosed(info);
  }

  /** Route an error to the `error` event (console.error when nobody listens). */
  reportError(error: Error, context: string): void {
    this.#reportError(error, context);
  }

  #reportError(error: Error, context: string): void {
    if (this.#events.listenerCount('error') > 0) this.#events.emit('error', { error, context });
    else this.#opts.onError(error, context);
  }

  // -------------------------------------------------------------------- tokens

  #scheduleTokenRefresh(): void {
    clearTimeout(this.#tokenTimer);
    if (this.#opts.refreshToken === undefined || this.#state === 'closed') return;
    const exp = tokenExpiry(this.#token);
    if (exp === undefined) return;
    const now = Date.now();
    const at = refreshAt(exp, now, this.#opts.tokenRefreshMarginMs, this.#clockOffsetMs);
    this.#tokenTimer = setTimeout(() => {
      this.#refreshToken().catch((err: unknown) => {
        this.#reportError(asProtocolError(err), 'token refresh');
      });
    }, at - now);
  }

  /** Get a new token (one refresh at a time); retried with backoff until it succeeds. */
  async #refreshToken(): Promise<void> {
    this.#refreshing ??= (async () => {
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
          this.#events.emit('token', { expiresAt: tokenExpiry(token) });
          await this.#presentToken();
          return;
        } catch (err) {
          if (this.#lc.ended()) return;
          this.#reportError(
            err instanceof Error ? err : new Error(String(err)),
            `token refresh (attempt ${String(attempt + 1)})`,
          );
          await this.#sleep(backoffDelay(attempt, this.#opts.backoff, this.#opts.random));
        }
      }
    })().finally(() => {
      this.#refreshing = undefined;
      this.#scheduleTokenRefresh();
    });
    await this.#refreshing;
  }

  /**
   * Give the server the fresh token (`refreshToken`), so the session outlives the old one.
   * While disconnected it goes with the next reconnect instead; a refusal is reported (the
   * session is cut with 4003 when the old token expires, and rejoins with the new one).
   */
  async #presentToken(): Promise<void> {
    const conn = this.#conn;
    const token = this.#token;
    if (this.#state !== 'connected' || conn === undefined || conn.lost) return;
    try {
      const d = await conn.request(
        'refreshToken',
        { bearer: token },
        { timeoutMs: this.#opts.requestTimeoutMs, signal: this.#lc.signal },
      );
      const r = parseReply('refreshToken', RefreshTokenReply, d) as Static<
        typeof RefreshTokenReply
      >;
      if (conn === this.#conn) this.#tokenOnServer = token;
      if (r.iceServers !== undefined && this.#join !== undefined) {
        this.#join = { ...this.#join, iceServers: r.iceServers };
      }
    } catch (err) {
      if (this.#lc.ended()) return;
      this.#reportError(asProtocolError(err), 'presenting the refreshed token');
    }
  }

  // -------------------------------------------------------------------- frames

  #onFrame(conn: Connection, frame: Record<string, unknown>): void {
    const a = frame['a'];
    if (typeof frame['invalid'] === 'string' || typeof a !== 'string') {
      this.#reportError(
        new ProtocolError(
          'JSON',
          `unreadable frame from ${conn.url}: ${typeof frame['invalid'] === 'string' ? frame['invalid'] : 'no action'}`,
        ),
        'frame',
      );
      return;
    }
    if (Object.hasOwn(frame, 'sid') && isServerRequest(a)) {
      this.#onServerRequest(conn, frame);
      return;
    }
    const schema = eventSchema(a);
    if (schema === undefined) {
      this.#reportError(new ProtocolError('UNKNOWN_ACTION', `unknown frame ${a}`), 'frame');
      return;
    }
    const parsed = validatorOf(`event:${a}`, schema).parse(frame['d']);
    if (!parsed.ok) {
      this.#reportError(
        new ProtocolError(
          'JSON_FIELD_INVALID',
          `${a}: ${parsed.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
        ),
        'frame',
      );
      return;
    }
    if (a === 'eventBatch') {
      // Each event in turn, as if it had come alone (each checked against its own schema).
      for (const event of parsed.value as ServerEventData<'eventBatch'>) {
        this.#onFrame(conn, event);
      }
      return;
    }
    if (a === 'eventRequestCancelled') {
      const { sid } = parsed.value as { sid: number };
      this.#serving.get(sid)?.abort(new ProtocolError('CANCELLED', 'the server gave up'));
      this.#serving.delete(sid);
    }
    this.#events.emit(a as RoomEventName, parsed.value as never);
  }

  #onServerRequest(conn: Connection, raw: Record<string, unknown>): void {
    const parsed = serverRequestFrame.parse(raw);
    if (!parsed.ok) {
      this.#reportError(
        new ProtocolError('JSON_FIELD_INVALID', 'malformed server request'),
        'frame',
      );
      return;
    }
    const { a: method, sid, timeoutMs } = parsed.value;
    const reply = (frame: object): void => {
      if (conn.lost) return; // the server cancelled it with the connection
      conn.send({ a: `${method}R`, sid, ...frame });
    };
    const handler = this.#handlers.get(method);
    const data = (serverRequestData as Record<ServerRequest, Validator<TSchema>>)[method].parse(
      parsed.value.d,
    );
    if (handler === undefined || !data.ok) {
      reply({
        s: false,
        e: new ProtocolError(handler === undefined ? 'UNKNOWN_ACTION' : 'JSON_FIELD_INVALID').code,
      });
      return;
    }
    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new ProtocolError('TIMEOUT'));
    }, timeoutMs);
    this.#serving.set(sid, ac);
    void (async () => {
      try {
        const result = await handler(data.value as never, { signal: ac.signal, sid });
        const checked = (serverRequestReply as Record<ServerRequest, Validator<TSchema>>)[
          method
        ].parse(result);
        if (!checked.ok) {
          throw new ProtocolError('SYSTEM', `the ${method} handler returned an invalid reply`);
        }
        reply({ s: true, d: checked.value });
      } catch (err) {
        const e = asProtocolError(err);
        if (!isProtocolError(err) || e.errorName === 'SYSTEM') {
          this.#reportError(err instanceof Error ? err : e, `the ${method} handler`);
        }
        reply({ s: false, e: e.code });
      } finally {
        clearTimeout(timer);
        this.#serving.delete(sid);
      }
    })().catch((err: unknown) => {
      this.#reportError(asProtocolError(err), `answering ${method}`);
    });
  }
}

/**
 * Connect to a gateway (or the first reachable of several) and join `options.room`.
 * Resolves with the joined session; rejects with a ProtocolError when the join is refused
 * (AUTH_FAILED, ROOM_IS_NOT_JOINABLE, ROOM_IS_FULL…) or no gateway answered within
 * `firstConnectRetryMs`.
 */
export async function connect(
  url: string | readonly string[],
  options: ConnectOptions,
): Promise<Session> {
  const session = new Session(url, options);
  await session.start();
  return session;
}
