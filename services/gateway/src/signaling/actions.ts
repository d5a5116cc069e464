/**
 * What each client request does once its frame is read (dispatch.ts), and what the client's
 * notifications do. Every action checks its `d` against its schema first, then what it needs
 * of the connection — a session (joined), or a caller (signed in, or a member) — and its
 * grants, before anything reaches the rooms service, a media node, a peer or a host. Joins,
 * reconnects, sign-ins and token refreshes are their own objects' (join.ts, sign-in.ts,
 * credentials.ts).
 */
import {
  ClientNotifications,
  MEMBERS_PAGE_MAX,
  ProtocolError,
  Rooms,
  clientActionData,
  hostGranted,
  invalidPayload,
  isMediaAction,
  signalingSubjects,
  validator,
  type Camera,
  type ClientAction,
  type CpuTelemetry,
  type FreezeTelemetry,
  type MediaAction,
  type Orientation,
  type Parsed,
  type RequestId,
} from '@switchboard/protocol';
import type { CallEndpoint, CallPrincipal } from '../hosts/endpoint.ts';
import { Coalescer } from './coalescer.ts';
import type { Attached, ConnectionDeps } from './connection.ts';
import type { Credentials } from './credentials.ts';
import type { Handlers } from './dispatch.ts';
import { decodeSdp } from './frames.ts';
import { authorizePeerSignaling } from './grants.ts';
import type { Joins } from './join.ts';
import type { MediaProxy } from './media.ts';
import type { SignIn, SignedIn } from './sign-in.ts';

const notificationData = {
  eventCpu: validator(ClientNotifications.eventCpu),
  eventFreeze: validator(ClientNotifications.eventFreeze),
};

export interface ActionsOptions extends Pick<
  ConnectionDeps,
  'bus' | 'router' | 'iceServers' | 'hosts' | 'limits' | 'log'
> {
  connectionId: string;
  /** Aborted when the connection closes: what its actions wait for is cancelled. */
  signal: AbortSignal;
  /** The session attached; USER_NOT_AUTHENTICATED before a join or reconnect succeeded. */
  session: () => Attached;
  /** Who the connection is signed in as without a room, if it is. */
  signedIn: () => SignedIn | undefined;
  /** Who this connection calls as: a signed-in connection, or a room member. */
  caller: () => CallPrincipal;
  /** The connection's way to its room's media node. */
  media: Pick<MediaProxy, 'call'>;
  /** This connection's calls (made, and answered when it is a host). */
  calls: Pick<
    CallEndpoint,
    'host' | 'heartbeat' | 'unregister' | 'callHost' | 'cancel' | 'answer' | 'reject' | 'candidate'
  >;
  joins: Pick<Joins, 'join' | 'reconnect'>;
  signIn: Pick<SignIn, 'signIn' | 'hostOnline' | 'refresh'>;
  credentials: Pick<Credentials, 'refresh'>;
}

export class Actions implements Handlers {
  readonly #o: ActionsOptions;
  readonly #session: () => Attached;
  /** orientationChange writes to the rooms service, at most one per interval (latest wins). */
  readonly #orientation: Coalescer<{ orientation: Orientation; camera: Camera }>;

  constructor(opts: ActionsOptions) {
    this.#o = opts;
    this.#session = opts.session;
    this.#orientation = new Coalescer(
      opts.limits.orientationIntervalMs,
      async (d) => {
        const s = this.#session();
        await opts.bus.request(
          Rooms.orientation,
          { socketId: s.socketId, connectionId: opts.connectionId, ...d },
          { signal: opts.signal },
        );
      },
      (err: unknown) => {
        opts.log.debug({ err }, 'a coalesced orientationChange was not written');
      },
    );
  }

  async run(
    action: ClientAction | MediaAction,
    data: unknown,
    id: RequestId | undefined,
  ): Promise<unknown> {
    if (isMediaAction(action)) {
      const s = this.#session();
      return await this.#o.media.call(
        action,
        data,
        {
          roomId: s.roomId,
          socketId: s.socketId,
          userId: s.userId,
          connectionId: this.#o.connectionId,
          grants: s.auth.grants,
        },
        this.#o.signal,
      );
    }
    switch (action) {
      case 'join': {
        const d = this.#valid('join', data);
        return await this.#o.joins.join(d);
      }
      case 'reconnect': {
        const d = this.#valid('reconnect', data);
        return await this.#o.joins.reconnect(d);
      }
      case 'refreshToken': {
        const d = this.#valid('refreshToken', data);
        if (this.#o.signedIn() !== undefined) return await this.#o.signIn.refresh(d.bearer);
        return await this.#o.credentials.refresh(d.bearer);
      }
      case 'ping': {
        this.#valid('ping', data);
        this.#o.calls.heartbeat();
        return { now: Date.now() };
      }
      case 'authenticate': {
        const d = this.#valid('authenticate', data);
        const who = await this.#o.signIn.signIn(d.bearer);
        const iceServers = this.#o.iceServers.for(who.userId, who.expiresAt);
        return {
          userId: who.userId,
          expiresAt: who.expiresAt,
          ...(iceServers === undefined ? {} : { iceServers }),
        };
      }
      case 'hostOnline': {
        const d = this.#valid('hostOnline', data);
        return await this.#o.signIn.hostOnline(d.bearer, d.instance);
      }
      case 'hostOffline': {
        this.#valid('hostOffline', data);
        if (this.#o.calls.host === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
        await this.#o.calls.unregister(true);
        return undefined;
      }
      case 'listHosts': {
        const d = this.#valid('listHosts', data);
        const who = this.#o.caller();
        return await this.#o.hosts.presence.list(
          (host) => hostGranted(who.call, host),
          d.after,
          d.limit ?? 100,
        );
      }
      case 'callHost': {
        const d = this.#valid('callHost', data);
        return await this.#o.calls.callHost(this.#o.caller(), d, id);
      }
      case 'cancelCall': {
        const d = this.#valid('cancelCall', data);
        this.#o.caller();
        this.#o.calls.cancel(d.id);
        return undefined;
      }
      case 'answerCall': {
        const d = this.#valid('answerCall', data);
        this.#o.calls.answer(d.callId, d.sdp);
        return undefined;
      }
      case 'rejectCall': {
        const d = this.#valid('rejectCall', data);
        this.#o.calls.reject(d.callId, d.reason);
        return undefined;
      }
      case 'exchangeCallCandidate': {
        const d = this.#valid('exchangeCallCandidate', data);
        this.#o.calls.candidate(d.callId, d.candidate);
        return undefined;
      }
      case 'exchangeCandidate': {
        const d = this.#valid('exchangeCandidate', data);
        const s = this.#session();
        authorizePeerSignaling(s.auth.grants);
        notSelf(s, d.to);
        await this.#o.router.relay(
          d.to,
          s.roomId,
          { a: 'eventExchangeCandidate', d: { from: peer(s), candidate: d.candidate } },
          { signal: this.#o.signal },
        );
        return undefined;
      }
      case 'exchangeSdp': {
        const d = this.#valid('exchangeSdp', data);
        const s = this.#session();
        authorizePeerSignaling(s.auth.grants);
        notSelf(s, d.to);
        const sdp = decodeSdp(d.sdp);
        await this.#o.router.relay(
          d.to,
          s.roomId,
          { a: 'eventExchangeSdp', d: { from: peer(s), sdp } },
          { signal: this.#o.signal },
        );
        return undefined;
      }
      case 'listMembers': {
        const d = this.#valid('listMembers', data);
        const s = this.#session();
        return await this.#o.bus.request(
          Rooms.members,
          {
            roomId: s.roomId,
            socketId: s.socketId,
            after: d.after,
            limit: d.limit ?? MEMBERS_PAGE_MAX,
          },
          { signal: this.#o.signal },
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

  notify(kind: 'eventCpu' | 'eventFreeze', data: unknown): void {
    // eventFreeze comes without `d` in the document; eventCpu needs its `cpuUsed`.
    const cpu = kind === 'eventCpu' ? valid(notificationData.eventCpu, data) : undefined;
    if (kind === 'eventFreeze') valid(notificationData.eventFreeze, data ?? {});
    const s = this.#session();
    const source = { roomId: s.roomId, socketId: s.socketId, userId: s.userId, at: Date.now() };
    const { bus } = this.#o;
    const prefix = bus.prefix;
    if (cpu !== undefined) {
      const t: CpuTelemetry = { ...source, cpuUsed: cpu.cpuUsed };
      bus.publish(signalingSubjects.telemetryCpu(prefix), t);
    } else if (!s.auth.grants.hidden) {
      this.#o.router.broadcast(s.roomId, { a: 'eventFreeze', d: { from: peer(s) } }, s.socketId);
    }
    if (kind === 'eventFreeze') {
      const t: FreezeTelemetry = source;
      bus.publish(signalingSubjects.telemetryFreeze(prefix), t);
    }
  }

  /** The connection closed: a coalesced orientationChange held is not written. */
  close(): void {
    this.#orientation.close();
  }

  #valid<A extends ClientAction>(action: A, data: unknown) {
    return valid(clientActionData[action], data);
  }
}

/** `d` checked against its schema; a missing `d` is a missing field. */
function valid<T>(v: { parse(value: unknown): Parsed<T> }, data: unknown): T {
  if (data === undefined) throw new ProtocolError('JSON_FIELD_MISSING', '/d');
  const parsed = v.parse(data);
  if (!parsed.ok) throw invalidPayload(parsed.issues);
  return parsed.value;
}

function notSelf(s: Attached, to: string): void {
  if (to === s.socketId) throw new ProtocolError('JSON_FIELD_INVALID', '`to` is this session');
}

function peer(s: Attached): { socketId: string; userId: string } {
  return { socketId: s.socketId, userId: s.userId };
}
