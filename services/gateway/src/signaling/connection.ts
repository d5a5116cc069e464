/**
 * One client WebSocket on `/api`: reads frames, validates each against libs/protocol,
 * answers it (`<action>R`, echoing `id` when the client sent one) and writes the events
 * its session receives. The session itself lives in the rooms service; this object only
 * knows which session its socket is attached to.
 *
 * Bad input never escapes this object: a frame that is not JSON, has wrong or missing
 * fields, names an unknown action or comes too fast is answered with its error code; a
 * binary frame or a flood closes the socket with a close code and a reason.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { WebSocket } from '@fastify/websocket';
import type { Bus } from '@switchboard/bus';
import {
  ClientActions,
  ClientNotifications,
  CloseCodes,
  ProtocolError,
  MEMBERS_PAGE_MAX,
  Rooms,
  clientActionData,
  clientFrame,
  invalidPayload,
  isMediaAction,
  hostGranted,
  isProtocolError,
  replyError,
  replyOk,
  signalingSubjects,
  validator,
  type ClientAction,
  type MediaAction,
  type CpuTelemetry,
  type DetachReason,
  type FreezeTelemetry,
  type Member,
  type SessionGrants,
  type Parsed,
  type ErrorName,
  type Camera,
  type JoinData,
  type Orientation,
  type ReconnectData,
  type SessionAuth,
  type EventFrameMessage,
  type ReplyFrame,
  type RequestId,
  type ServerRequest,
  type ServerRequestFrame,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { Grant, TokenVerifier } from '../auth.ts';
import type { IceServers } from '../turn.ts';
import type { Disconnector } from './disconnector.ts';
import {
  UNKNOWN_FRAME_ACTION,
  decodeSdp,
  deviceOf,
  encodeEvent,
  encodeFrame,
  frameText,
  isActionName,
  isRecord,
  metricAction,
  requestIdOf,
  type EncodedFrame,
} from './frames.ts';
import { Coalescer } from './coalescer.ts';
import { authorizePeerSignaling } from './grants.ts';
import type { SignalingMetrics } from './metrics.ts';
import { MediaProxy } from './media.ts';
import { RateLimiter } from './rate-limit.ts';
import type { CallEndpoint, CallPrincipal } from '../hosts/endpoint.ts';
import type { HostServices } from '../hosts/services.ts';
import type { Attachable, Router } from './router.ts';
import { ServerCalls } from './server-calls.ts';
import { FrameWriter } from './writes.ts';

export interface ConnectionDeps {
  bus: Bus;
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
interface Attached {
  socketId: string;
  roomId: string;
  userId: string;
  platform: string;
  /** When its token expires (epoch ms), and what it allows; refreshToken replaces both. */
  auth: SessionAuth;
  /** The client reads eventBatch (`batchEvents` of its join, or of its reconnect here). */
  batchEvents: boolean;
}

/** A new resume token: 32 random bytes, base64url (43 characters). */
function newResumeToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the rooms service keeps of a resume token (and all that crosses the bus). */
function resumeHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The longest a Node timer waits (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A connection signed in without a room (`authenticate`, `hostOnline`): a caller, or a
 * host. Its token's expiry is enforced as a session's is.
 */
interface SignedIn extends CallPrincipal {
  expiresAt: number;
  /** The host name the token grants, if any. */
  host?: string;
}

type State =
  | { kind: 'fresh' }
  | { kind: 'joining'; batchEvents: boolean }
  | { kind: 'joined'; session: Attached }
  | { kind: 'signedIn'; who: SignedIn }
  | { kind: 'closed' };

const notificationData = {
  eventCpu: validator(ClientNotifications.eventCpu),
  eventFreeze: validator(ClientNotifications.eventFreeze),
};

export class Connection implements Attachable {
  readonly connectionId = randomBytes(16).toString('hex');
  readonly #ws: WebSocket;
  /** Frames for the socket, written once per event-loop turn. */
  readonly #out: FrameWriter;
  readonly #deps: ConnectionDeps;
  readonly #ip: string;
  readonly #log: Logger;
  readonly #limiter: RateLimiter;
  readonly #closed = new AbortController();
  readonly #media: MediaProxy;
  #state: State = { kind: 'fresh' };
  /** Events that arrived while a join/reconnect was in progress, written after its reply. */
  #held: Buffer[] | undefined;
  #inflight = 0;
  #lastHeard = Date.now();
  #detached = false;
  /** Closes a socket that never joins. */
  #joinTimer: NodeJS.Timeout | undefined;
  /** Closes the socket (4003) when its session's token expires. */
  #expiryTimer: NodeJS.Timeout | undefined;
  /** The session ends now when the socket closes (its token expired): no reconnect window. */
  #leaveOnClose = false;
  /** orientationChange writes to the rooms service, at most one per interval (latest wins). */
  readonly #orientation: Coalescer<{ orientation: Orientation; camera: Camera }>;
  /** Server requests written to the client and waiting for its reply. */
  readonly #calls: ServerCalls;
  /** This connection's calls (made, and answered when it is a host). */
  readonly #hostCalls: CallEndpoint;

  constructor(ws: WebSocket, ip: string, deps: ConnectionDeps) {
    this.#ws = ws;
    this.#out = new FrameWriter(ws);
    this.#ip = ip;
    this.#deps = deps;
    this.#log = deps.log.child({ connectionId: this.connectionId });
    this.#limiter = new RateLimiter(deps.limits.ratePerS, deps.limits.burst);
    this.#media = new MediaProxy(deps.bus);
    this.#calls = new ServerCalls({
      send: (frame) => {
        this.#send(frame);
      },
      metrics: deps.metrics,
      log: this.#log,
    });
    this.#hostCalls = deps.hosts.endpoint(this.connectionId, (event) => {
      this.#send(event);
    });
    this.#orientation = new Coalescer(
      deps.limits.orientationIntervalMs,
      async (d) => {
        const s = this.#session();
        await this.#deps.bus.request(
          Rooms.orientation,
          { socketId: s.socketId, connectionId: this.connectionId, ...d },
          { signal: this.#closed.signal },
        );
      },
      (err: unknown) => {
        this.#log.debug({ err }, 'a coalesced orientationChange was not written');
      },
    );
    ws.on('message', (data, isBinary) => {
      this.#onMessage(data, isBinary);
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

  // ----------------------------------------------------------------------- frames

  #onMessage(data: unknown, isBinary: boolean): void {
    this.#lastHeard = Date.now();
    if (this.#state.kind === 'closed') return;
    this.#deps.metrics.frames.inc();
    if (isBinary) {
      this.#deps.metrics.rejected.inc({ reason: 'binary' });
      this.close(CloseCodes.unsupportedData, 'binary frames are not supported');
      return;
    }
    // The limit comes before any parsing: garbage floods are floods too.
    const limit = this.#limiter.take();
    if (limit === 'flood') {
      this.#deps.metrics.rejected.inc({ reason: 'flood' });
      this.close(CloseCodes.policyViolation, 'rate limit exceeded');
      return;
    }
    const text = frameText(data);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.#reject(UNKNOWN_FRAME_ACTION, limit === 'ok' ? 'JSON' : 'RATE_LIMITED', undefined);
      return;
    }
    if (isRecord(raw) && Object.hasOwn(raw, 'sid')) {
      // A reply to one of the server's requests (client requests carry `id`, never `sid`).
      this.#calls.reply(raw);
      return;
    }
    const parsed = clientFrame.parse(raw);
    if (!parsed.ok) {
      const a = isRecord(raw) && isActionName(raw['a']) ? raw['a'] : UNKNOWN_FRAME_ACTION;
      const id = isRecord(raw) ? requestIdOf(raw['id']) : undefined;
      this.#reject(
        a,
        limit === 'ok' ? invalidPayload(parsed.issues).errorName : 'RATE_LIMITED',
        id,
      );
      return;
    }
    const frame = parsed.value;
    if (limit === 'refused') {
      this.#reject(frame.a, 'RATE_LIMITED', frame.id);
      return;
    }

    if (Object.hasOwn(ClientActions, frame.a)) {
      this.#request(frame.a as ClientAction, frame.d, frame.id);
    } else if (isMediaAction(frame.a)) {
      this.#request(frame.a, frame.d, frame.id);
    } else if (frame.a === 'eventCpu' || frame.a === 'eventFreeze') {
      this.#notification(frame.a, frame.d, frame.id);
    } else {
      this.#reject(frame.a, 'UNKNOWN_ACTION', frame.id);
    }
  }

  #request(action: ClientAction | MediaAction, data: unknown, id: RequestId | undefined): void {
    if (this.#inflight >= this.#deps.limits.maxInflight) {
      this.#reject(action, 'RATE_LIMITED', id);
      return;
    }
    this.#inflight += 1;
    const started = performance.now();
    const wasFresh = this.#state.kind === 'fresh';
    const run = this.#run(action, data, id);
    // #run is synchronous up to its first await, so this tells whether this very request
    // started a join/reconnect (and must release the events held meanwhile).
    const began = wasFresh && this.#state.kind === 'joining';
    this.#answer(action, id, run, started, began).catch((err: unknown) => {
      this.#log.error({ err, action }, 'answering a request failed');
    });
  }

  /**
   * Reply to a request once it ran, and count it; then release what a join held meanwhile.
   * One async function, not a chain of promises: every relay comes through here.
   */
  async #answer(
    action: ClientAction | MediaAction,
    id: RequestId | undefined,
    run: Promise<unknown>,
    started: number,
    began: boolean,
  ): Promise<void> {
    try {
      let result: unknown;
      let error: ProtocolError | undefined;
      try {
        result = await run;
      } catch (err) {
        error = this.#protocolError(err, action);
      }
      this.#send(
        error === undefined ? replyOk(action, result, id) : replyError(action, error.code, id),
      );
      this.#deps.metrics.requests.inc({ action, outcome: error?.errorName ?? 'ok' });
      this.#deps.metrics.duration.observe({ action }, (performance.now() - started) / 1000);
    } finally {
      this.#inflight -= 1;
      // A join's reply is out: write what arrived meanwhile, in order.
      if (began) this.#release();
    }
  }

  async #run(
    action: ClientAction | MediaAction,
    data: unknown,
    id: RequestId | undefined,
  ): Promise<unknown> {
    if (isMediaAction(action)) {
      const s = this.#session();
      return await this.#media.call(
        action,
        data,
        {
          roomId: s.roomId,
          socketId: s.socketId,
          userId: s.userId,
          connectionId: this.connectionId,
          grants: s.auth.grants,
        },
        this.#closed.signal,
      );
    }
    switch (action) {
      case 'join': {
        const d = this.#valid('join', data);
        return await this.#join(d);
      }
      case 'reconnect': {
        const d = this.#valid('reconnect', data);
        return await this.#reconnect(d);
      }
      case 'refreshToken': {
        const d = this.#valid('refreshToken', data);
        if (this.#state.kind === 'signedIn') return await this.#refreshSignedIn(d.bearer);
        return await this.#refresh(d.bearer);
      }
      case 'ping': {
        this.#valid('ping', data);
        this.#hostCalls.heartbeat();
        return { now: Date.now() };
      }
      case 'authenticate': {
        const d = this.#valid('authenticate', data);
        const who = await this.#signIn(d.bearer);
        const iceServers = this.#deps.iceServers.for(who.userId, who.expiresAt);
        return {
          userId: who.userId,
          expiresAt: who.expiresAt,
          ...(iceServers === undefined ? {} : { iceServers }),
        };
      }
      case 'hostOnline': {
        const d = this.#valid('hostOnline', data);
        return await this.#hostOnline(d.bearer, d.instance);
      }
      case 'hostOffline': {
        this.#valid('hostOffline', data);
        if (this.#hostCalls.host === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
        await this.#hostCalls.unregister(true);
        return undefined;
      }
      case 'listHosts': {
        const d = this.#valid('listHosts', data);
        const who = this.#caller();
        return await this.#deps.hosts.presence.list(
          (host) => hostGranted(who.call, host),
          d.after,
          d.limit ?? 100,
        );
      }
      case 'callHost': {
        const d = this.#valid('callHost', data);
        return await this.#hostCalls.callHost(this.#caller(), d, id);
      }
      case 'cancelCall': {
        const d = this.#valid('cancelCall', data);
        this.#caller();
        this.#hostCalls.cancel(d.id);
        return undefined;
      }
      case 'answerCall': {
        const d = this.#valid('answerCall', data);
        this.#hostCalls.answer(d.callId, d.sdp);
        return undefined;
      }
      case 'rejectCall': {
        const d = this.#valid('rejectCall', data);
        this.#hostCalls.reject(d.callId, d.reason);
        return undefined;
      }
      case 'exchangeCallCandidate': {
        const d = this.#valid('exchangeCallCandidate', data);
        this.#hostCalls.candidate(d.callId, d.candidate);
        return undefined;
      }
      case 'exchangeCandidate': {
        const d = this.#valid('exchangeCandidate', data);
        const s = this.#session();
        authorizePeerSignaling(s.auth.grants);
        this.#notSelf(s, d.to);
        await this.#deps.router.relay(
          d.to,
          s.roomId,
          { a: 'eventExchangeCandidate', d: { from: peer(s), candidate: d.candidate } },
          { signal: this.#closed.signal },
        );
        return undefined;
      }
      case 'exchangeSdp': {
        const d = this.#valid('exchangeSdp', data);
        const s = this.#session();
        authorizePeerSignaling(s.auth.grants);
        this.#notSelf(s, d.to);
        const sdp = decodeSdp(d.sdp);
        await this.#deps.router.relay(
          d.to,
          s.roomId,
          { a: 'eventExchangeSdp', d: { from: peer(s), sdp } },
          { signal: this.#closed.signal },
        );
        return undefined;
      }
      case 'listMembers': {
        const d = this.#valid('listMembers', data);
        const s = this.#session();
        return await this.#deps.bus.request(
          Rooms.members,
          {
            roomId: s.roomId,
            socketId: s.socketId,
            after: d.after,
            limit: d.limit ?? MEMBERS_PAGE_MAX,
          },
          { signal: this.#closed.signal },
        );
      }
      case 'orientationChange': {
        const d = this.#valid('orientationChange', data);
        this.#session();
        await this.#orientation.submit(d);
        return undefined;
      }
    }
  }

  async #join(d: JoinData): Promise<unknown> {
    const batchEvents = d.batchEvents === true;
    this.#begin(batchEvents);
    const grant = await this.#deps.verifier.verify(d.bearer);
    if (!this.#deps.verifier.mayJoin(grant, d.roomId)) {
      throw new ProtocolError('ROOM_IS_NOT_JOINABLE', 'the token does not grant this room');
    }
    const socketId = randomBytes(16).toString('hex');
    const resumeToken = newResumeToken();
    const auth = authOf(grant);
    const pending = this.#deps.router.attach(socketId, d.roomId, this);
    try {
      const reply = await this.#deps.bus.request(
        Rooms.join,
        {
          ...deviceOf(d),
          roomId: d.roomId,
          socketId,
          connectionId: this.connectionId,
          gatewayId: this.#deps.gatewayId,
          gatewayStartedAt: this.#deps.gatewayStartedAt,
          userId: grant.userId,
          ip: this.#ip,
          resumeHash: resumeHash(resumeToken),
          ...auth,
          ...(grant.name === undefined ? {} : { name: grant.name }),
          ...(grant.metadata === undefined ? {} : { metadata: grant.metadata }),
          ...(d.bitrate === undefined ? {} : { bitrate: d.bitrate }),
        },
        { signal: this.#closed.signal },
      );
      const { roomSeq, ...joined } = reply;
      pending.commit(roomSeq);
      // Closed meanwhile: the client never saw this socketId, so the session leaves.
      this.#attached(
        {
          socketId,
          roomId: d.roomId,
          userId: grant.userId,
          platform: d.platform,
          auth,
          batchEvents,
        },
        true,
      );
      const iceServers = this.#deps.iceServers.for(grant.userId, auth.tokenExpiresAt);
      return { ...joined, resumeToken, ...(iceServers === undefined ? {} : { iceServers }) };
    } catch (err) {
      pending.rollback();
      if (outcomeUnknown(err)) {
        // The rooms service may have admitted the session after all: take it back.
        this.#deps.disconnector.submit({ socketId, connectionId: this.connectionId, leave: true });
      }
      throw err;
    }
  }

  async #reconnect(d: ReconnectData): Promise<unknown> {
    const batchEvents = d.batchEvents === true;
    this.#begin(batchEvents);
    const { socketId } = d;
    if (d.resumeToken === undefined && !this.#deps.auth.legacyResume) {
      throw new ProtocolError('AUTH_FAILED', 'reconnect needs the resumeToken of the session');
    }
    if (d.nextResumeToken !== undefined && d.nextResumeToken === d.resumeToken) {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/nextResumeToken is the current one');
    }
    const proof = d.resumeToken === undefined ? null : resumeHash(d.resumeToken);
    // A fresher token, when the client has one: checked before anything is asked.
    const grant = d.bearer === undefined ? undefined : await this.#deps.verifier.verify(d.bearer);
    const session = await this.#deps.bus.request(
      Rooms.lookup,
      { socketId, resumeHash: proof },
      { signal: this.#closed.signal },
    );
    let auth: SessionAuth | undefined;
    if (grant !== undefined) {
      this.#sameHolder(grant, session);
      auth = authOf(grant);
    }
    if (this.#expired((auth ?? session).tokenExpiresAt)) {
      throw new ProtocolError('AUTH_FAILED', 'token expired');
    }
    const next = d.nextResumeToken ?? newResumeToken();
    const pending = this.#deps.router.attach(socketId, session.roomId, this);
    try {
      const reply = await this.#deps.bus.request(
        Rooms.reconnect,
        {
          socketId,
          roomId: session.roomId,
          connectionId: this.connectionId,
          gatewayId: this.#deps.gatewayId,
          gatewayStartedAt: this.#deps.gatewayStartedAt,
          ip: this.#ip,
          resumeHash: proof,
          nextResumeHash: resumeHash(next),
          ...(auth === undefined ? {} : { auth }),
        },
        { signal: this.#closed.signal },
      );
      const replaced = pending.commit(reply.roomSeq);
      if (replaced !== undefined && replaced !== this) replaced.detach('replaced');
      this.#attached(
        {
          socketId,
          roomId: reply.session.roomId,
          userId: reply.session.userId,
          platform: reply.session.platform,
          auth: { tokenExpiresAt: reply.session.tokenExpiresAt, grants: reply.session.grants },
          batchEvents,
        },
        false,
      );
      // The client may have missed the room's broadcasts while it was away: it gets the room
      // as it is now (after reconnectR, which is written first).
      this.#deps.router.sendRoomState(socketId, this.#closed.signal).catch((err: unknown) => {
        if (!this.#closed.signal.aborted) {
          this.#log.warn({ err, socketId }, 'the room state after a resume was not sent');
        }
      });
      return { roomSize: reply.roomSize, resumeToken: next };
    } catch (err) {
      pending.rollback();
      if (outcomeUnknown(err)) {
        // The rooms service may have attached the session to this connection after all.
        this.#deps.disconnector.submit({ socketId, connectionId: this.connectionId, leave: false });
      }
      throw err;
    }
  }

  /**
   * A fresh token for this session: same user, still granting the room. Its expiry and
   * grants replace the session's (here and in the rooms service, for later reconnects).
   */
  async #refresh(bearer: string): Promise<unknown> {
    const s = this.#session();
    const grant = await this.#deps.verifier.verify(bearer);
    this.#sameHolder(grant, s);
    const token = authOf(grant);
    const { grants } = await this.#deps.bus.request(
      Rooms.refresh,
      { socketId: s.socketId, connectionId: this.connectionId, ...token },
      { signal: this.#closed.signal },
    );
    const auth = { tokenExpiresAt: token.tokenExpiresAt, grants };
    // The socket may have closed (or been replaced) while the rooms service wrote it.
    if (this.#state.kind !== 'joined' || this.#state.session !== s) {
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    s.auth = auth;
    this.#armExpiry(auth.tokenExpiresAt);
    const iceServers = this.#deps.iceServers.for(s.userId, auth.tokenExpiresAt);
    return {
      expiresAt: auth.tokenExpiresAt,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }

  /** Sign in without a room (a caller, or a host); from a fresh connection only. */
  async #signIn(bearer: string): Promise<SignedIn> {
    this.#begin(false);
    try {
      const grant = await this.#deps.verifier.verify(bearer);
      if (this.#state.kind !== 'joining')
        throw new ProtocolError('CANCELLED', 'the connection closed');
      const who: SignedIn = {
        userId: grant.userId,
        call: grant.call,
        expiresAt: grant.expiresAt,
        ...(grant.name === undefined ? {} : { name: grant.name }),
        ...(grant.host === undefined ? {} : { host: grant.host }),
      };
      this.#state = { kind: 'signedIn', who };
      clearTimeout(this.#joinTimer);
      this.#armExpiry(who.expiresAt);
      this.#deps.onAttached?.();
      return who;
    } catch (err) {
      this.#release();
      throw err;
    }
  }

  async #hostOnline(bearer: string, instance: string | undefined): Promise<unknown> {
    const who = await this.#signIn(bearer);
    if (who.host === undefined) {
      throw new ProtocolError('PERMISSION_DENIED', 'the token grants no host name');
    }
    const inst = instance ?? randomBytes(12).toString('base64url');
    await this.#hostCalls.register(who.host, inst);
    const iceServers = this.#deps.iceServers.for(who.userId, who.expiresAt);
    return {
      host: who.host,
      instance: inst,
      expiresAt: who.expiresAt,
      presenceIntervalMs: this.#deps.hosts.presenceIntervalMs,
      readDeadlineMs: this.#deps.hosts.readDeadlineMs,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }

  /** A fresh token for a signed-in connection: the same user (and host, for a host). */
  async #refreshSignedIn(bearer: string): Promise<unknown> {
    const was = this.#signedIn();
    const grant = await this.#deps.verifier.verify(bearer);
    if (grant.userId !== was.userId) {
      throw new ProtocolError('AUTH_FAILED', "the token is not the connection user's");
    }
    const host = this.#hostCalls.host;
    if (host !== undefined && grant.host !== host.name) {
      throw new ProtocolError('AUTH_FAILED', "the token does not grant this connection's host");
    }
    if (this.#state.kind !== 'signedIn' || this.#state.who !== was) {
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    was.expiresAt = grant.expiresAt;
    was.call = grant.call;
    if (grant.name !== undefined) was.name = grant.name;
    this.#armExpiry(grant.expiresAt);
    const iceServers = this.#deps.iceServers.for(was.userId, grant.expiresAt);
    return {
      expiresAt: grant.expiresAt,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }

  #signedIn(): SignedIn {
    if (this.#state.kind !== 'signedIn') throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#state.who;
  }

  /** Who this connection calls as: a signed-in connection, or a room member. */
  #caller(): CallPrincipal {
    if (this.#state.kind === 'signedIn') return this.#state.who;
    if (this.#state.kind === 'joined') {
      const s = this.#state.session;
      return { userId: s.userId, call: s.auth.grants.call ?? [] };
    }
    throw new ProtocolError('USER_NOT_AUTHENTICATED');
  }

  /** A token presented for an existing session must be its user's and grant its room. */
  #sameHolder(grant: Grant, s: { userId: string; roomId: string }): void {
    if (grant.userId !== s.userId) {
      throw new ProtocolError('AUTH_FAILED', "the token is not the session user's");
    }
    if (!this.#deps.verifier.mayJoin(grant, s.roomId)) {
      throw new ProtocolError('AUTH_FAILED', "the token does not grant the session's room");
    }
  }

  /** Whether a token expiring at `at` (epoch ms) is past it, tolerance included. */
  #expired(at: number): boolean {
    return Date.now() > at + this.#deps.auth.clockToleranceMs;
  }

  /** Cut the session when its token expires (4003), unless refreshToken comes first. */
  #armExpiry(at: number): void {
    clearTimeout(this.#expiryTimer);
    const wait = at + this.#deps.auth.clockToleranceMs - Date.now();
    this.#expiryTimer = setTimeout(
      () => {
        const st = this.#state;
        if (st.kind !== 'joined' && st.kind !== 'signedIn') return;
        const exp = st.kind === 'joined' ? st.session.auth.tokenExpiresAt : st.who.expiresAt;
        // A timer capped at MAX_TIMER_MS fires early: wait on.
        if (!this.#expired(exp)) {
          this.#armExpiry(exp);
          return;
        }
        this.#deps.metrics.rejected.inc({ reason: 'token_expired' });
        this.#leaveOnClose = true;
        this.close(CloseCodes.tokenExpired, 'token expired');
      },
      Math.min(Math.max(0, wait), MAX_TIMER_MS),
    );
  }

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
    this.#armExpiry(session.auth.tokenExpiresAt);
    this.#deps.onAttached?.();
    this.#deps.metrics.sessions.inc();
  }

  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (this.#state.kind === 'joining') this.#state = { kind: 'fresh' };
    if (held === undefined || this.#state.kind !== 'joined') return;
    for (const bytes of held) this.#write(bytes);
  }

  #notification(kind: 'eventCpu' | 'eventFreeze', data: unknown, id: RequestId | undefined): void {
    try {
      // eventFreeze comes without `d` in the document; eventCpu needs its `cpuUsed`.
      const cpu = kind === 'eventCpu' ? valid(notificationData.eventCpu, data) : undefined;
      if (kind === 'eventFreeze') valid(notificationData.eventFreeze, data ?? {});
      const s = this.#session();
      const source = { roomId: s.roomId, socketId: s.socketId, userId: s.userId, at: Date.now() };
      const prefix = this.#deps.bus.prefix;
      if (cpu !== undefined) {
        const t: CpuTelemetry = { ...source, cpuUsed: cpu.cpuUsed };
        this.#deps.bus.publish(signalingSubjects.telemetryCpu(prefix), t);
      } else if (!s.auth.grants.hidden) {
        this.#deps.router.broadcast(
          s.roomId,
          { a: 'eventFreeze', d: { from: peer(s) } },
          s.socketId,
        );
      }
      if (kind === 'eventFreeze') {
        const t: FreezeTelemetry = source;
        this.#deps.bus.publish(signalingSubjects.telemetryFreeze(prefix), t);
      }
      this.#deps.metrics.requests.inc({ action: kind, outcome: 'ok' });
    } catch (err) {
      this.#reject(kind, this.#protocolError(err, kind).errorName, id);
    }
  }

  // ---------------------------------------------------------------------- helpers

  #valid<A extends ClientAction>(action: A, data: unknown) {
    return valid(clientActionData[action], data);
  }

  #session(): Attached {
    if (this.#state.kind !== 'joined') throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#state.session;
  }

  #notSelf(s: Attached, to: string): void {
    if (to === s.socketId) throw new ProtocolError('JSON_FIELD_INVALID', '`to` is this session');
  }

  #protocolError(err: unknown, action: string): ProtocolError {
    if (isProtocolError(err)) {
      if (err.errorName === 'SYSTEM') this.#log.warn({ err, action }, 'request failed');
      // Why a token was refused (never the token itself), for whoever debugs a client.
      if (err.errorName === 'AUTH_FAILED') this.#log.info({ reason: err.message }, 'join refused');
      return err;
    }
    this.#log.error({ err, action }, 'request failed unexpectedly');
    return new ProtocolError('SYSTEM');
  }

  #reject(action: string, name: ErrorName, id: RequestId | undefined): void {
    const e = new ProtocolError(name);
    this.#deps.metrics.requests.inc({ action: metricAction(action), outcome: e.errorName });
    this.#send(replyError(action, e.code, id));
  }

  #send(frame: ReplyFrame | EventFrameMessage | ServerRequestFrame): void {
    this.#write(encodeFrame(frame));
  }

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
    this.#orientation.close();
    clearTimeout(this.#expiryTimer);
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

/** `d` checked against its schema; a missing `d` is a missing field. */
function valid<T>(v: { parse(value: unknown): Parsed<T> }, data: unknown): T {
  if (data === undefined) throw new ProtocolError('JSON_FIELD_MISSING', '/d');
  const parsed = v.parse(data);
  if (!parsed.ok) throw invalidPayload(parsed.issues);
  return parsed.value;
}

/** What a verified token says, as the session keeps it. */
function authOf(grant: Grant): SessionAuth {
  return { tokenExpiresAt: grant.expiresAt, grants: grant.grants };
}

/** A failure after which the rooms service may or may not have done the work. */
function outcomeUnknown(err: unknown): boolean {
  return isProtocolError(err) && (err.errorName === 'TIMEOUT' || err.errorName === 'CANCELLED');
}

function peer(s: Attached): { socketId: string; userId: string } {
  return { socketId: s.socketId, userId: s.userId };
}
