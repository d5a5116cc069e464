/**
 * One client WebSocket on `/api`: reads frames, validates each against libs/protocol,
 * answers it (`<action>R`, echoing `id` when the client sent one) and writes the events
 * its session receives. The session itself lives in the rooms service; this object only
 * knows which session its socket is attached to.
 *
 * Bad input never escapes this object: a frame that is not JSON, has wrong or missing
 * fields, names an unknown action or comes too fast is answered with its error code; a
 * binary frame or a flood closes the socket with a close code and a reason.
 *
 * The connection keeps the socket, what it is (fresh, joining, a session's, signed in,
 * closed), the events held while a join is answered and the ways it ends; its parts are
 * objects of their own, which it owns and closes: the frames read and answered (dispatch.ts),
 * what each action does (actions.ts), join and reconnect (join.ts), the token's refresh and
 * expiry (credentials.ts), sign-in without a room (sign-in.ts), the server's requests to the
 * client (server-calls.ts) and its calls (hosts/endpoint.ts).
 */
import { randomBytes } from 'node:crypto';
import type { WebSocket } from '@fastify/websocket';
import type { BusLike } from '@switchboard/bus';
import {
  CloseCodes,
  ProtocolError,
  type DetachReason,
  type EventFrameMessage,
  type Member,
  type ReplyFrame,
  type ServerRequest,
  type ServerRequestFrame,
  type SessionAuth,
  type SessionGrants,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { TokenVerifier } from '../auth.ts';
import type { CallEndpoint } from '../hosts/endpoint.ts';
import type { HostServices } from '../hosts/services.ts';
import type { IceServers } from '../turn.ts';
import { Actions } from './actions.ts';
import { Credentials } from './credentials.ts';
import type { Disconnector } from './disconnector.ts';
import { Dispatch } from './dispatch.ts';
import { encodeEvent, encodeFrame, type EncodedFrame } from './frames.ts';
import { Joins } from './join.ts';
import { MediaProxy } from './media.ts';
import type { SignalingMetrics } from './metrics.ts';
import type { Attachable, Router } from './router.ts';
import { ServerCalls } from './server-calls.ts';
import { SignIn, type SignedIn } from './sign-in.ts';
import { FrameWriter } from './writes.ts';

export interface ConnectionDeps {
  bus: BusLike;
  router: Router;
  verifier: TokenVerifier;
  /** The joinR's `iceServers` (STUN/TURN, with TURN credentials). */
  iceServers: IceServers;
  disconnector: Disconnector;
  metrics: SignalingMetrics;
  log: Logger;
  gatewayId: string;
  /** When this gateway process started, by its clock (see RoomsJoinRequest.gatewayStartedAt). */
  gatewayStartedAt: number;
  auth: {
    /** AUTH_CLOCK_TOLERANCE_S, in ms: a session is cut this long after its token's exp. */
    clockToleranceMs: number;
    /** GATEWAY_LEGACY_RESUME: `reconnect` by socketId alone (unsafe). */
    legacyResume: boolean;
  };
  limits: {
    ratePerS: number;
    burst: number;
    maxInflight: number;
    maxBufferedBytes: number;
    joinTimeoutMs: number;
    /** At most one orientationChange write per this interval; later ones coalesced. */
    orientationIntervalMs: number;
  };
  /** Hosts, calls and presence (hosts/). */
  hosts: HostServices;
  /** Called once, when the connection is attached to a session (join or reconnect). */
  onAttached?: () => void;
}

/** The session this connection is attached to, once join or reconnect succeeded. */
export interface Attached {
  socketId: string;
  roomId: string;
  userId: string;
  platform: string;
  /** When its token expires (epoch ms), and what it allows; refreshToken replaces both. */
  auth: SessionAuth;
  /** The client reads eventBatch (`batchEvents` of its join, or of its reconnect here). */
  batchEvents: boolean;
}

type State =
  | { kind: 'fresh' }
  | { kind: 'joining'; batchEvents: boolean }
  | { kind: 'joined'; session: Attached }
  | { kind: 'signedIn'; who: SignedIn }
  | { kind: 'closed' };

export class Connection implements Attachable {
  readonly connectionId = randomBytes(16).toString('hex');
  readonly #ws: WebSocket;
  /** Frames for the socket, written once per event-loop turn. */
  readonly #out: FrameWriter;
  readonly #deps: ConnectionDeps;
  readonly #log: Logger;
  readonly #closed = new AbortController();
  readonly #media: MediaProxy;
  #state: State = { kind: 'fresh' };
  /** Events that arrived while a join/reconnect was in progress, written after its reply. */
  #held: Buffer[] | undefined;
  #lastHeard = Date.now();
  #detached = false;
  /** Closes a socket that never joins. */
  #joinTimer: NodeJS.Timeout | undefined;
  /** The session ends now when the socket closes (its token expired): no reconnect window. */
  #leaveOnClose = false;
  /** The client's frames, read and answered. */
  readonly #dispatch: Dispatch;
  /** What the client's actions do. */
  readonly #actions: Actions;
  /** The token held: its refresh, and its expiry, which closes the socket (4003). */
  readonly #credentials: Credentials;
  /** Server requests written to the client and waiting for its reply. */
  readonly #calls: ServerCalls;
  /** This connection's calls (made, and answered when it is a host). */
  readonly #hostCalls: CallEndpoint;

  constructor(ws: WebSocket, ip: string, deps: ConnectionDeps) {
    this.#ws = ws;
    this.#out = new FrameWriter(ws);
    this.#deps = deps;
    const log = deps.log.child({ connectionId: this.connectionId });
    this.#log = log;
    const { connectionId } = this;
    const signal = this.#closed.signal;
    this.#media = new MediaProxy(deps.bus);
    const send = (frame: ReplyFrame | EventFrameMessage | ServerRequestFrame): void => {
      this.#write(encodeFrame(frame));
    };
    this.#calls = new ServerCalls({ send, metrics: deps.metrics, log });
    this.#hostCalls = deps.hosts.endpoint(connectionId, send);
    const credentials = new Credentials({
      ...deps,
      clockToleranceMs: deps.auth.clockToleranceMs,
      connectionId,
      signal,
      attached: () => (this.#state.kind === 'joined' ? this.#state.session : undefined),
      expiresAt: () => {
        const st = this.#state;
        if (st.kind !== 'joined' && st.kind !== 'signedIn') return undefined;
        return st.kind === 'joined' ? st.session.auth.tokenExpiresAt : st.who.expiresAt;
      },
    });
    credentials.on('expired', () => {
      this.#deps.metrics.rejected.inc({ reason: 'token_expired' });
      this.#leaveOnClose = true;
      this.close(CloseCodes.tokenExpired, 'token expired');
    });
    this.#credentials = credentials;
    // The parts see the connection's state through these, and change it only through its
    // transitions (#begin, #attached, #signedInAs, #release).
    const begin = (batchEvents: boolean): void => {
      this.#begin(batchEvents);
    };
    const release = (): void => {
      this.#release();
    };
    const signedIn = (): SignedIn | undefined =>
      this.#state.kind === 'signedIn' ? this.#state.who : undefined;
    const joins = new Joins({
      ...deps,
      log,
      conn: this,
      ip,
      signal,
      credentials,
      begin,
      attached: (session, leaveIfClosed) => {
        this.#attached(session, leaveIfClosed);
      },
    });
    const signIn = new SignIn({
      ...deps,
      calls: this.#hostCalls,
      credentials,
      signedIn,
      begin,
      signedInAs: (who) => {
        this.#signedInAs(who);
      },
      release,
    });
    this.#actions = new Actions({
      ...deps,
      log,
      connectionId,
      signal,
      // The check itself, not a wrapper of one: every relay goes through it.
      session: () => {
        if (this.#state.kind !== 'joined') throw new ProtocolError('USER_NOT_AUTHENTICATED');
        return this.#state.session;
      },
      signedIn,
      caller: () => {
        if (this.#state.kind === 'signedIn') return this.#state.who;
        if (this.#state.kind === 'joined') {
          const s = this.#state.session;
          return { userId: s.userId, call: s.auth.grants.call ?? [] };
        }
        throw new ProtocolError('USER_NOT_AUTHENTICATED');
      },
      media: this.#media,
      calls: this.#hostCalls,
      credentials,
      joins,
      signIn,
    });
    this.#dispatch = new Dispatch({
      limits: deps.limits,
      metrics: deps.metrics,
      log,
      handlers: this.#actions,
      replies: this.#calls,
      send,
      close: (code, reason) => {
        this.close(code, reason);
      },
      joining: () => this.#state.kind === 'joining',
      release,
    });
    ws.on('message', (data, isBinary) => {
      this.#lastHeard = Date.now();
      // One read of the state: whether the socket is closed, and whether this frame may
      // begin a join (see Dispatch.frame).
      const kind = this.#state.kind;
      if (kind === 'closed') return;
      this.#dispatch.frame(data, isBinary, kind === 'fresh');
    });
    ws.on('pong', () => {
      this.#lastHeard = Date.now();
    });
    ws.on('close', (code, reason) => {
      this.#onClose(code, reason.toString('utf8'));
    });
    ws.on('error', (err) => {
      // ws closes the socket after an error (bad frame, too big: 1009, bad UTF-8: 1007).
      this.#log.info({ err: err.message }, 'socket error');
    });
    this.#joinTimer = setTimeout(() => {
      const k = this.#state.kind;
      if (k === 'joined' || k === 'signedIn' || k === 'closed') return;
      this.#deps.metrics.rejected.inc({ reason: 'join_timeout' });
      this.close(CloseCodes.policyViolation, 'join or reconnect first');
    }, deps.limits.joinTimeoutMs);
  }

  /** When a frame or a pong was last received (epoch ms). */
  get lastHeard(): number {
    return this.#lastHeard;
  }

  ping(): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.ping();
  }

  /** Drop a socket that stopped answering: its session enters the reconnect window. */
  terminate(why: string): void {
    this.#log.info({ why }, 'terminating silent socket');
    this.#ws.terminate();
  }

  /**
   * The gateway is stopping: the session enters its reconnect window now (not when the
   * client answers the close), and the socket is closed with 1012 so the client
   * reconnects through another gateway.
   */
  shutdown(): void {
    if (this.#state.kind === 'joined' && !this.#detached) {
      const s = this.#state.session;
      this.#detached = true;
      this.#deps.disconnector.submit({
        socketId: s.socketId,
        connectionId: this.connectionId,
        leave: false,
      });
    }
    this.close(CloseCodes.serviceRestart, 'gateway shutting down');
  }

  /** Close the socket; the close handler does the rest. */
  close(code: number, reason: string): void {
    if (this.#ws.readyState === this.#ws.OPEN || this.#ws.readyState === this.#ws.CONNECTING) {
      // What is queued for the socket goes before the close frame.
      this.#out.flush();
      this.#ws.close(code, reason);
    }
  }

  // ------------------------------------------------------------------- Attachable

  get batchEvents(): boolean {
    const st = this.#state;
    if (st.kind === 'joined') return st.session.batchEvents;
    return st.kind === 'joining' && st.batchEvents;
  }

  deliver(event: EventFrameMessage): void {
    this.deliverEncoded(encodeEvent(event));
  }

  deliverEncoded(frame: EncodedFrame): void {
    // The room's media starts again, maybe on another node: ask for it anew.
    if (frame.mediaReset) this.#media.reset();
    if (this.#held !== undefined) {
      this.#held.push(frame.bytes);
      return;
    }
    this.#write(frame.bytes);
  }

  detach(reason: DetachReason, message?: string): void {
    this.#detached = true;
    const closes: Record<DetachReason, readonly [number, string]> = {
      replaced: [CloseCodes.replaced, 'session reconnected elsewhere'],
      expired: [CloseCodes.expired, 'session expired'],
      removed: [CloseCodes.removed, 'removed'],
      deleted: [CloseCodes.roomDeleted, 'room deleted'],
    };
    const [code, text] = closes[reason];
    // A close reason is at most 123 bytes; the API's reason is at most 100 characters.
    const why = message === undefined ? text : Buffer.from(message).subarray(0, 123).toString();
    this.close(code, why);
  }

  /**
   * The server API changed this session's member (name, metadata) or grants: they apply
   * from now on, and the client is told (with its grants: the others are told without).
   */
  updated(participant: Member, grants: SessionGrants): void {
    if (this.#state.kind !== 'joined') return;
    this.#state.session.auth = { ...this.#state.session.auth, grants };
    this.deliver({ a: 'eventParticipantUpdated', d: { ...participant, grants } });
  }

  async call(method: ServerRequest, data: unknown, deadline: number): Promise<unknown> {
    if (this.#state.kind !== 'joined' || this.#ws.readyState !== this.#ws.OPEN) {
      throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
    }
    return await this.#calls.call(method, data, deadline);
  }

  // ------------------------------------------------------------------ the way in

  /**
   * Start a join or reconnect: only from a fresh connection, one at a time. `batchEvents`
   * already counts for what arrives meanwhile (held, and written after the reply).
   */
  #begin(batchEvents: boolean): void {
    if (this.#state.kind !== 'fresh') throw new ProtocolError('ROOM_ALREADY_JOINED');
    this.#state = { kind: 'joining', batchEvents };
    this.#held = [];
  }

  /** The rooms service took the session; `leaveIfClosed`: how to undo it if the socket went. */
  #attached(session: Attached, leaveIfClosed: boolean): void {
    if (this.#state.kind === 'closed') {
      // The socket went away while the rooms service admitted it: the session follows.
      this.#deps.router.release(session.socketId, this);
      this.#deps.disconnector.submit({
        socketId: session.socketId,
        connectionId: this.connectionId,
        leave: leaveIfClosed,
      });
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    this.#state = { kind: 'joined', session };
    clearTimeout(this.#joinTimer);
    this.#credentials.armExpiry(session.auth.tokenExpiresAt);
    this.#deps.onAttached?.();
    this.#deps.metrics.sessions.inc();
  }

  /** Signed in without a room (a caller, or a host), unless the socket went meanwhile. */
  #signedInAs(who: SignedIn): void {
    if (this.#state.kind !== 'joining')
      throw new ProtocolError('CANCELLED', 'the connection closed');
    this.#state = { kind: 'signedIn', who };
    clearTimeout(this.#joinTimer);
    this.#credentials.armExpiry(who.expiresAt);
    this.#deps.onAttached?.();
  }

  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (this.#state.kind === 'joining') this.#state = { kind: 'fresh' };
    if (held === undefined || this.#state.kind !== 'joined') return;
    for (const bytes of held) this.#write(bytes);
  }

  // ------------------------------------------------------------------------ socket

  #write(bytes: Buffer): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    const buffered = this.#out.bufferedAmount;
    if (buffered > this.#deps.limits.maxBufferedBytes) {
      // The client reads slower than its room talks: a close frame would wait behind the
      // backlog, so the socket is cut; its session waits for a reconnect.
      this.#deps.metrics.rejected.inc({ reason: 'slow_reader' });
      this.#log.warn({ buffered }, 'client too slow; cutting it off');
      this.#ws.terminate();
      return;
    }
    this.#out.text(bytes);
  }

  #onClose(code: number, reason: string): void {
    clearTimeout(this.#joinTimer);
    this.#actions.close();
    this.#credentials.close();
    const was = this.#state;
    this.#state = { kind: 'closed' };
    this.#held = undefined;
    this.#closed.abort(new ProtocolError('CANCELLED', 'the connection closed'));
    this.#calls.cancelAll();
    // A host that closes normally (or whose token expired) is offline now; one whose socket
    // dropped has until its read deadline to come back.
    const offline = code === CloseCodes.normal || this.#leaveOnClose;
    this.#hostCalls.close(offline).catch((err: unknown) => {
      this.#log.warn({ err }, 'closing the calls of a connection failed');
    });
    if (was.kind !== 'joined') return;
    this.#deps.metrics.sessions.dec();
    const s = was.session;
    this.#deps.router.release(s.socketId, this);
    if (this.#detached) return;
    // A session whose token expired leaves now: it could not reconnect anyway.
    const leave = code === CloseCodes.normal || this.#leaveOnClose;
    this.#log.info({ socketId: s.socketId, code, reason, leave }, 'socket closed');
    this.#deps.disconnector.submit({
      socketId: s.socketId,
      connectionId: this.connectionId,
      leave,
    });
  }
}
