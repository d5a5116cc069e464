/**
 * Hosts, calls and presence: the other half of a switchboard. A host (a camera, a robot, a
 * kiosk, an AI agent) connects to any gateway and registers under a name its token grants
 * (`hostOnline`); a caller whose token grants `call` patterns calls it **by name** with an SDP
 * offer (`callHost`); a call queue hands the offer to one waiting answerer of that host,
 * which answers or refuses; then the two talk directly over WebRTC (data channels; rpc.ts).
 *
 * Client actions (the `{"a","d","id"}` frames of client.ts):
 *
 *   authenticate {bearer}               sign a connection in without a room (callers)
 *   hostOnline {bearer, instance?}      register as an answerer of the token's host
 *   hostOffline {}                      stop answering; presence offline at once
 *   listHosts {after?, limit?}          the hosts the token may call, with presence
 *   callHost {host, sdp, timeoutMs?}    → {callId, sdp} (the answer), or an error
 *   cancelCall {id}                     give up the callHost request with this `id`
 *   answerCall {callId, sdp}            (host) the answer to an eventCall
 *   rejectCall {callId, reason?}        (host) refuse it: the caller gets CALL_REJECTED
 *   exchangeCallCandidate {callId, candidate}   trickle ICE, either side
 *
 * Events: eventCall {callId, from, sdp, timeoutMs} to the host, eventCallCandidate to the
 * other side, eventCallCancelled {callId, reason} to a host whose caller gave up.
 *
 * Between gateways (NATS, subjects under `<p>`):
 *
 *   <p>.calls.offer.<host>        JetStream stream `callStream(p)` (work queue): one message
 *                                 per pending offer, taken by one answerer through the
 *                                 host's durable consumer `hostConsumer(host)`, acked once
 *                                 answered, refused, expired or cancelled
 *   <p>.calls.sig.<callId>.caller signaling to the caller's gateway (ringing, answer,
 *   <p>.calls.sig.<callId>.host   reject, candidates) and to the host's (candidates, cancel)
 *   <p>.presence.<host>           presence changes of a host, for subscribers
 *
 * Presence is kept in the KV bucket `presenceBucket(p)`, one key per host instance
 * (`host.<name>.<instance>`); a host is online while one of its instances is.
 *
 * Room members have presence too, by user: online while the user holds a session in any room
 * (one in its reconnect window included), offline with `lastSeen` when the last one leaves.
 * The events service derives it from the room-events stream (room.join, room.leave) into the
 * KV bucket `memberPresenceBucket(p)` (`session.<user>.<socketId>` per session, `user.<user>`
 * the summary) and publishes changes on `<p>.presence.user.<user>` (`<user>`: the userId as
 * base64url, one subject token).
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Bearer, HostName } from './credentials.ts';
import { jetStreamToken } from './bus.ts';
import { validator } from './validate.ts';
import { IceCandidate, IceServerList, SessionDescription } from './webrtc.ts';

/** A call's id: 16 random bytes of the caller's gateway, lower-case hex. */
export const CallId = Type.String({ pattern: '^[0-9a-f]{32}$' });
/**
 * One running copy of a host (a process, a device): the SDK draws one per process and keeps
 * it across reconnects, so a host that comes back through another gateway stays online.
 */
export const HostInstance = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' });

/** How long a caller waits for an answer by default, and at most (ms). */
export const CALL_DEFAULT_TIMEOUT_MS = 30_000;
export const CALL_MAX_TIMEOUT_MS = 120_000;

const Reason = Type.String({ maxLength: 256 });
const Epoch = Type.Integer({ minimum: 0 });

/** Who calls: the caller's user id (its token's `sub`) and name, as its gateway verified them. */
export const Caller = Type.Object({
  userId: Type.String({ minLength: 1, maxLength: 128 }),
  name: Type.Optional(Type.String({ maxLength: 128 })),
});
export type Caller = Static<typeof Caller>;

// ------------------------------------------------------------------------- client actions

export const AuthenticateData = Type.Object({ bearer: Bearer });
export const AuthenticateReply = Type.Object({
  userId: Caller.properties.userId,
  /** When the token expires, epoch ms (refreshToken before it; the socket closes with 4003). */
  expiresAt: Epoch,
  /** RTCIceServer[] for the calls this connection makes (when the gateway has TURN_URLS). */
  iceServers: Type.Optional(IceServerList),
});

export const HostOnlineData = Type.Object({
  bearer: Bearer,
  /** This copy of the host (see HostInstance); the gateway draws one when absent. */
  instance: Type.Optional(HostInstance),
});
export const HostOnlineReply = Type.Object({
  host: HostName,
  instance: HostInstance,
  expiresAt: Epoch,
  /**
   * How often the host should send `ping` (its presence heartbeat), ms. A host silent for
   * `readDeadlineMs` is offline; it should itself reconnect when the gateway has been silent
   * that long.
   */
  presenceIntervalMs: Type.Integer({ minimum: 1 }),
  readDeadlineMs: Type.Integer({ minimum: 1 }),
  iceServers: Type.Optional(IceServerList),
});

export const HostStatus = Type.Union([Type.Literal('online'), Type.Literal('offline')]);
export type HostStatus = Static<typeof HostStatus>;

/** A host as listHosts and presence subscribers see it. */
export const HostPresence = Type.Object({
  host: HostName,
  status: HostStatus,
  /** When the host was last heard from (any instance), epoch ms. */
  lastSeen: Epoch,
  /** Instances online now. */
  instances: Type.Integer({ minimum: 0 }),
});
export type HostPresence = Static<typeof HostPresence>;

export const ListHostsData = Type.Object({
  /** Page after this host name (the previous page's `next`). */
  after: Type.Optional(HostName),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
});
export const ListHostsReply = Type.Object({
  hosts: Type.Array(HostPresence, { maxItems: 500 }),
  /** Present when there are more: pass it as `after`. */
  next: Type.Optional(HostName),
});

export const CallHostData = Type.Object({
  host: HostName,
  sdp: SessionDescription,
  /**
   * How long to wait for an answer, ms (default CALL_DEFAULT_TIMEOUT_MS, at most
   * CALL_MAX_TIMEOUT_MS). An offline host that comes back inside it gets the call.
   */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: CALL_MAX_TIMEOUT_MS })),
});
export const CallHostReply = Type.Object({ callId: CallId, sdp: SessionDescription });

export const CancelCallData = Type.Object({
  /** The `id` of the callHost request to give up (its reply is CANCELLED). */
  id: Type.Union([
    Type.String({ minLength: 1, maxLength: 64 }),
    Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  ]),
});

export const AnswerCallData = Type.Object({ callId: CallId, sdp: SessionDescription });
export const RejectCallData = Type.Object({ callId: CallId, reason: Type.Optional(Reason) });
export const ExchangeCallCandidateData = Type.Object({ callId: CallId, candidate: IceCandidate });

/** The host and call actions, merged into ClientActions (client.ts). */
export const HostActions = {
  authenticate: { data: AuthenticateData, reply: AuthenticateReply },
  hostOnline: { data: HostOnlineData, reply: HostOnlineReply },
  hostOffline: { data: Type.Object({}), reply: undefined },
  listHosts: { data: ListHostsData, reply: ListHostsReply },
  callHost: { data: CallHostData, reply: CallHostReply },
  cancelCall: { data: CancelCallData, reply: undefined },
  answerCall: { data: AnswerCallData, reply: undefined },
  rejectCall: { data: RejectCallData, reply: undefined },
  exchangeCallCandidate: { data: ExchangeCallCandidateData, reply: undefined },
} as const satisfies Record<string, { data: TSchema; reply: TSchema | undefined }>;

// --------------------------------------------------------------------------------- events

export const CallCancelReason = Type.Union([
  /** The caller gave up (cancelCall, or its connection closed). */
  Type.Literal('cancelled'),
  /** The caller's timeout passed before the answer reached it. */
  Type.Literal('timeout'),
]);

/** The host and call events, merged into ServerEvents (client.ts). */
export const HostEvents = {
  /** An offer for this host: answer it (answerCall) or refuse it (rejectCall) in timeoutMs. */
  eventCall: Type.Object({
    callId: CallId,
    from: Caller,
    sdp: SessionDescription,
    timeoutMs: Type.Integer({ minimum: 0 }),
  }),
  eventCallCandidate: Type.Object({ callId: CallId, candidate: IceCandidate }),
  eventCallCancelled: Type.Object({ callId: CallId, reason: CallCancelReason }),
} as const satisfies Record<string, TSchema>;

// ------------------------------------------------------------------ between gateways (NATS)

/** An offer as it waits in the call stream for an answerer. */
export const CallOffer = Type.Object({
  callId: CallId,
  host: HostName,
  from: Caller,
  sdp: SessionDescription,
  /** When the caller stops waiting, epoch ms: an answerer drops an offer past it. */
  deadline: Epoch,
});
export type CallOffer = Static<typeof CallOffer>;
export const callOffer = validator(CallOffer);

/** What one side's gateway tells the other's about a call (`calls.sig.<callId>.<side>`). */
export const CallSignal = Type.Union([
  /** To the caller: an answerer has the offer (its candidates may flow now). */
  Type.Object({ kind: Type.Literal('ringing') }),
  Type.Object({ kind: Type.Literal('answer'), sdp: SessionDescription }),
  Type.Object({ kind: Type.Literal('reject'), reason: Type.Optional(Reason) }),
  Type.Object({ kind: Type.Literal('candidate'), candidate: IceCandidate }),
  /** To the host: the caller gave up. */
  Type.Object({ kind: Type.Literal('cancel'), reason: CallCancelReason }),
]);
export type CallSignal = Static<typeof CallSignal>;
export const callSignal = validator(CallSignal);

/** One host instance's presence record (KV `host.<name>.<instance>`). */
export const PresenceRecord = Type.Object({
  host: HostName,
  instance: HostInstance,
  status: HostStatus,
  /** The gateway and connection holding it now (only they may turn it offline). */
  gatewayId: Type.String({ maxLength: 64 }),
  connectionId: Type.String({ maxLength: 64 }),
  /** Online since (epoch ms), and last heard from. */
  since: Epoch,
  lastSeen: Epoch,
});
export type PresenceRecord = Static<typeof PresenceRecord>;
export const presenceRecord = validator(PresenceRecord);

/** Published on `<p>.presence.<host>` when a host goes online or offline. */
export const PresenceChange = Type.Object({
  ...HostPresence.properties,
  /** When the change happened, epoch ms. */
  at: Epoch,
});
export type PresenceChange = Static<typeof PresenceChange>;
export const presenceChange = validator(PresenceChange);

/** A user's presence as room member (the summary key, and what changes publish). */
export const MemberPresence = Type.Object({
  userId: Caller.properties.userId,
  status: HostStatus,
  /** Sessions the user holds now, in all rooms. */
  sessions: Type.Integer({ minimum: 0 }),
  /** When the user was last in a room: now while online, else when its last session left. */
  lastSeen: Epoch,
});
export type MemberPresence = Static<typeof MemberPresence>;
export const memberPresence = validator(MemberPresence);

/** Published on `<p>.presence.user.<user>` when a user comes online or goes offline. */
export const MemberPresenceChange = Type.Object({ ...MemberPresence.properties, at: Epoch });
export type MemberPresenceChange = Static<typeof MemberPresenceChange>;
export const memberPresenceChange = validator(MemberPresenceChange);

/** A userId as one subject (and KV key) token: base64url of its UTF-8. */
export function userToken(userId: string): string {
  let bin = '';
  for (const b of new TextEncoder().encode(userId)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The KV bucket of room members' presence (written by the events service only). */
export function memberPresenceBucket(prefix: string): string {
  return `${jetStreamToken(prefix)}_members`;
}

export const hostSubjects = {
  offer: (p: string, host: string): string => `${p}.calls.offer.${host}`,
  offers: (p: string): string => `${p}.calls.offer.*`,
  signal: (p: string, callId: string, side: 'caller' | 'host'): string =>
    `${p}.calls.sig.${callId}.${side}`,
  signals: (p: string): string => `${p}.calls.sig.*.*`,
  presence: (p: string, host: string): string => `${p}.presence.${host}`,
  presenceAll: (p: string): string => `${p}.presence.*`,
  member: (p: string, userId: string): string => `${p}.presence.user.${userToken(userId)}`,
  members: (p: string): string => `${p}.presence.user.*`,
};

/** The JetStream stream of pending offers. */
export function callStream(prefix: string): string {
  return `${jetStreamToken(prefix)}_CALLS`;
}

/** The durable consumer every answerer of `host` shares (each offer goes to one of them). */
export function hostConsumer(host: string): string {
  return `host_${host}`;
}

/** The KV bucket of host presence. */
export function presenceBucket(prefix: string): string {
  return `${jetStreamToken(prefix)}_presence`;
}

/** A presence key: `host.<name>.<instance>` (both single tokens). */
export function presenceKey(host: string, instance: string): string {
  return `host.${host}.${instance}`;
}
