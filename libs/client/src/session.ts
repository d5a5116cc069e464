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
 *
 * Its parts: a Reconnector (the connections, shared with SignalingLink), a TokenRefresher
 * (also a link's), a Membership (resume or join) and ServerRequests (`handle()`).
 */
import {
  CloseCodes,
  ClientActions,
  MediaActions,
  ProtocolError,
  isServerRequest,
  type ClientNotification,
  type ClientNotifications,
  type JoinReply,
  type Member,
  type ServerEventData,
  type ServerRequest,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { ClientCloseCodes, type Connection, type LostInfo } from './connection.ts';
import type { IterateOptions, Listener } from './emitter.ts';
import { clientBase, type ClientBase } from './gateway-options.ts';
import { Membership } from './membership.ts';
import { Reconnector } from './reconnector.ts';
import { eventSchema, parseReply, validatorOf } from './schemas.ts';
import { ServerRequests, type ServerRequestHandler } from './server-requests.ts';
import type {
  ActionData,
  ActionReply,
  CloseInfo,
  ConnectOptions,
  RequestOptions,
  RoomEventName,
  SessionAction,
  SessionEvents,
  SessionState,
} from './session-types.ts';
import { TokenRefresher } from './token-refresher.ts';

// ------------------------------------------------------------------------ session

export class Session {
  readonly roomId: string;
  /** Its life (`lc`) ends with close(): every wait and timer of the session ends with it. */
  readonly #base: ClientBase<SessionEvents>;
  readonly #heartbeatIntervalMs: number;
  readonly #readDeadlineGraceMs: number;
  readonly #reconnector: Reconnector;
  readonly #tokens: TokenRefresher;
  readonly #membership: Membership;
  readonly #requests: ServerRequests;
  readonly #closedPromise: Promise<CloseInfo>;
  #resolveClosed!: (info: CloseInfo) => void;
  #clockOffsetMs = 0;
  #offlineSince = 0;
  readonly #onOnline = (): void => {
    this.activity();
  };

  /** Use `connect()`. */
  constructor(urls: string | readonly string[], options: ConnectOptions) {
    const gateways = typeof urls === 'string' ? [urls] : [...urls];
    if (gateways.length === 0) throw new TypeError('connect: no gateway URL');
    this.roomId = options.room;
    const isBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
    this.#base = clientBase<SessionEvents>(options);
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.#readDeadlineGraceMs = options.readDeadlineGraceMs ?? 5000;
    this.#reconnector = new Reconnector(gateways, this.#base, {
      attach: (conn) => this.#attach(conn),
      onFrame: (conn, frame) => {
        this.#onFrame(conn, frame);
      },
      onLost: (conn, info) => {
        this.#onLost(conn, info);
      },
    });
    this.#tokens = new TokenRefresher(options.token, this.#base, {
      connection: () => this.#reconnector.current,
      clockOffsetMs: () => this.#clockOffsetMs,
    });
    this.#tokens.on('token', ({ expiresAt }) => {
      this.#base.events.emit('token', { expiresAt });
    });
    this.#tokens.on('presented', ({ conn, token, reply }) => {
      this.#membership.presented(token, conn === this.#reconnector.conn, reply.iceServers);
    });
    this.#membership = new Membership({
      roomId: options.room,
      device: { platform: isBrowser ? 'web' : 'node', ...options.device },
      connectTimeoutMs: this.#base.settings.connectTimeoutMs,
      lc: this.#base.lc,
      tokens: this.#tokens,
    });
    this.#requests = new ServerRequests(this.#base.reportError);
    this.#closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#base.lc.endOn(options.signal, () => {
      this.leave().catch((err: unknown) => {
        this.#base.reportError(
          err instanceof Error ? err : new Error(String(err)),
          'leaving on the abort signal',
        );
      });
    });
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void };
    target.addEventListener?.('online', this.#onOnline);
  }

  // ----------------------------------------------------------------- public surface

  get state(): SessionState {
    return this.#reconnector.state;
  }

  /** This session's socketId (changes on a rejoin). */
  get socketId(): string {
    const socketId = this.#membership.socketId;
    if (socketId === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return socketId;
  }

  /** The reply of the latest join (a rejoin replaces it). */
  get joinReply(): JoinReply {
    const join = this.#membership.join;
    if (join === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return join;
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
    return this.#tokens.token;
  }

  /** The gateway URL of the current (or last) connection. */
  get url(): string {
    return this.#reconnector.url;
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
    return this.#base.events.on(event, listener);
  }

  async once<K extends keyof SessionEvents>(
    event: K,
    signal?: AbortSignal,
  ): Promise<SessionEvents[K]> {
    return await this.#base.events.once(event, signal);
  }

  /** `event` as an async iterator (ends with `opts.signal`, or when the session closes). */
  events<K extends keyof SessionEvents>(
    event: K,
    opts: IterateOptions = {},
  ): AsyncIterableIterator<SessionEvents[K]> {
    const signal =
      opts.signal === undefined
        ? this.#base.lc.signal
        : AbortSignal.any([opts.signal, this.#base.lc.signal]);
    return this.#base.events.iterate(event, { ...opts, signal });
  }

  /** Route an error to the `error` event (console.error when nobody listens). */
  reportError(error: Error, context: string): void {
    this.#base.reportError(error, context);
  }

  /** Send a request and wait for its typed reply. Rejects with a ProtocolError. */
  async request<A extends SessionAction>(
    action: A,
    data: ActionData<A>,
    opts: RequestOptions = {},
  ): Promise<ActionReply<A>> {
    const d = await this.#reconnector.request(action, data, opts);
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
    const conn = this.#reconnector.conn;
    if (this.state !== 'connected' || conn === undefined) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', `${kind}: not connected`);
    }
    conn.send({ a: kind, d: data });
  }

  /** Answer the server's `method` requests; returns the function that stops answering. */
  handle<M extends ServerRequest>(method: M, handler: ServerRequestHandler<M>): () => void {
    return this.#requests.handle(method, handler);
  }

  /** Something happened (user input, a network change): wake from dormancy, retry now. */
  activity(): void {
    this.#base.lc.wake();
  }

  /** Leave the room (close 1000: the session ends at once on the server). */
  async leave(): Promise<void> {
    await this.#reconnector.goodbye('leave', () => {
      this.#close({ reason: 'left' });
    });
  }

  // --------------------------------------------------------------- establishing

  /** The first join: resolves when joined; rejects (and closes) when it cannot be. */
  async start(): Promise<void> {
    await this.#reconnector.start((error) => {
      this.#close({ reason: 'failed', error });
    });
  }

  /** Resume the session on `conn`, or join anew; then `conn` is the session's. */
  async #attach(conn: Connection): Promise<void> {
    const attached = await this.#membership.attach(conn);
    const intervalMs = this.#heartbeatIntervalMs;
    this.#reconnector.adopt(conn, {
      intervalMs,
      readDeadlineMs: 2 * intervalMs + this.#readDeadlineGraceMs,
      onPong: (serverNow, rttMs) => {
        this.#clockOffsetMs = Math.round(serverNow + rttMs / 2 - Date.now());
      },
    });
    this.#tokens.schedule();
    const offlineMs = Date.now() - this.#offlineSince;
    if (attached.resumed) {
      const { socketId, roomSize } = attached;
      this.#base.events.emit('resumed', { socketId, roomSize, offlineMs, url: conn.url });
    } else if (attached.previousSocketId !== undefined) {
      this.#base.events.emit('rejoined', {
        socketId: attached.join.socketId,
        previousSocketId: attached.previousSocketId,
        join: attached.join,
        offlineMs,
        url: conn.url,
      });
    }
  }

  #onLost(conn: Connection, info: LostInfo): void {
    // Abort the handlers of server requests that came on it: their replies cannot go back.
    this.#requests.cancelAll();
    if (!this.#reconnector.carries(conn)) return;
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
    this.#reconnector.lost();
    this.#base.events.emit('disconnected', { code: info.code, reason: info.reason });
    // 4002: the session expired on the server; the reconnect answers SOCKET_ID_DOES_NOT_EXIST
    // and the session joins again, which is what it needs.
    this.#reconnector.reconnect((error) => {
      this.#close({ reason: 'refused', error });
    });
  }

  #close(info: CloseInfo): void {
    if (this.state === 'closed') return;
    const conn = this.#reconnector.conn;
    this.#reconnector.close();
    this.#base.lc.end();
    this.#tokens.close();
    const target = globalThis as { removeEventListener?: (t: string, f: () => void) => void };
    target.removeEventListener?.('online', this.#onOnline);
    if (info.reason !== 'left') conn?.close(ClientCloseCodes.readDeadline, info.reason);
    this.#base.events.emit('closed', info);
    this.#resolveClosed(info);
  }

  // -------------------------------------------------------------------- frames

  #onFrame(conn: Connection, frame: Record<string, unknown>): void {
    const a = frame['a'];
    if (typeof frame['invalid'] === 'string' || typeof a !== 'string') {
      this.#base.reportError(
        new ProtocolError(
          'JSON',
          `unreadable frame from ${conn.url}: ${typeof frame['invalid'] === 'string' ? frame['invalid'] : 'no action'}`,
        ),
        'frame',
      );
      return;
    }
    if (Object.hasOwn(frame, 'sid') && isServerRequest(a)) {
      this.#requests.serve(conn, frame);
      return;
    }
    const schema = eventSchema(a);
    if (schema === undefined) {
      this.#base.reportError(new ProtocolError('UNKNOWN_ACTION', `unknown frame ${a}`), 'frame');
      return;
    }
    const parsed = validatorOf(`event:${a}`, schema).parse(frame['d']);
    if (!parsed.ok) {
      this.#base.reportError(
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
    if (a === 'eventRequestCancelled') this.#requests.cancel((parsed.value as { sid: number }).sid);
    this.#base.events.emit(a as RoomEventName, parsed.value as never);
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
