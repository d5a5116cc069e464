/**
 * The client wire protocol over the gateway's WebSocket (`/api`), field for field as the
 * original signaling server documents it:
 *
 *   request  {"a": action, "d": data, "id"?: id}
 *   reply    {"a": action + "R", "s": true, "d"?: data, "id"?: id}
 *            {"a": action + "R", "s": false, "e": code, "id"?: id}
 *   event    {"a": event, "d"?: data}
 *
 * `id` is a backwards-compatible extension: when a request carries one, its reply echoes
 * it, so a client may keep several requests in flight. Clients that send none see exactly
 * the original protocol.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { validator } from './validate.ts';
import { IceCandidate, IceServerList, SessionDescription } from './webrtc.ts';
import { Bearer } from './credentials.ts';
import { HostActions, HostEvents } from './hosts.ts';
import { SessionGrants } from './auth.ts';

/**
 * 16 random bytes, lower-case hex (32 characters, as the original document has it).
 * Identifies a session to its peers; it is NOT a capability: resuming a session takes its
 * ResumeToken as well.
 */
export const SocketId = Type.String({ pattern: '^[0-9a-f]{32}$' });
/**
 * The secret that resumes a session (`reconnect`): 32 random bytes, base64url. Given to the
 * session's owner alone, in `joinR` and in every `reconnectR` (each use rotates it); the
 * rooms service keeps only its SHA-256.
 */
export const ResumeToken = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
export const RoomId = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._~:@-]+$',
});
export const UserId = Type.String({ minLength: 1, maxLength: 128 });
export const Orientation = Type.Union([
  Type.Literal(0),
  Type.Literal(90),
  Type.Literal(180),
  Type.Literal(270),
]);
export const Camera = Type.Union([Type.Literal('front'), Type.Literal('back')]);
export type Orientation = Static<typeof Orientation>;
export type Camera = Static<typeof Camera>;
const ShortText = Type.String({ maxLength: 256 });

export const Peer = Type.Object({ socketId: SocketId, userId: UserId });
export type Peer = Static<typeof Peer>;

/**
 * A member as the others see it: its Peer, and (extension) the name and metadata of its
 * token, when it has them. Clients of the original document ignore the extra fields.
 */
export const Member = Type.Object({
  ...Peer.properties,
  name: Type.Optional(Type.String({ maxLength: 128 })),
  metadata: Type.Optional(Type.String({ maxLength: 4096 })),
});
export type Member = Static<typeof Member>;

/** The getUserMedia() constraints the server asks every client of a room to use. */
export const UserMediaConfiguration = Type.Object({
  audio: Type.Boolean(),
  video: Type.Object({
    width: Type.Object({ max: Type.Integer({ minimum: 1 }) }),
    height: Type.Object({ max: Type.Integer({ minimum: 1 }) }),
    frameRate: Type.Object({
      min: Type.Optional(Type.Integer({ minimum: 1 })),
      max: Type.Optional(Type.Integer({ minimum: 1 })),
    }),
  }),
});
export type UserMediaConfiguration = Static<typeof UserMediaConfiguration>;

// ---------------------------------------------------------------------------- requests

/** What a client tells about its device when it joins (kept on its session). */
export const DeviceFields = {
  platform: ShortText,
  deviceName: Type.Optional(ShortText),
  networkType: Type.Optional(ShortText),
  version: Type.Optional(ShortText),
  appVersion: Type.Optional(ShortText),
  orientation: Type.Optional(Orientation),
  camera: Type.Optional(Camera),
};

export const JoinData = Type.Object({
  roomId: RoomId,
  bearer: Bearer,
  ...DeviceFields,
  /** Extension: the bitrate the client will send at, bits per second (room.join's `bitrate`). */
  bitrate: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
  /** Extension: the client reads `eventBatch` (see ServerEvents). */
  batchEvents: Type.Optional(Type.Boolean()),
});
export type JoinData = Static<typeof JoinData>;

/** The most members one joinR or listMembers reply lists (a few hundred KiB at most). */
export const MEMBERS_PAGE_MAX = 100;
/**
 * Where a page of a room's members ended (opaque to clients; listMembers and roomInfo go on
 * from it): the last member's join time (epoch ms) and socketId. Members are listed in the
 * order they joined, so one who joins while a caller pages comes last.
 */
export const MembersCursor = Type.String({ pattern: '^[0-9]{1,16}\\.[0-9a-f]{32}$' });

export const JoinReply = Type.Object({
  socketId: SocketId,
  /** The secret that resumes this session: keep it, show it to nobody (see ResumeToken). */
  resumeToken: ResumeToken,
  roomSize: Type.Integer({ minimum: 1 }),
  userMediaConfiguration: UserMediaConfiguration,
  /**
   * The other members (their name and metadata too, when their tokens have them), in the
   * order they joined: all of them, or the first MEMBERS_PAGE_MAX with `sessionsNext`.
   */
  sessions: Type.Array(Member, { maxItems: MEMBERS_PAGE_MAX }),
  /** Set when the room has more members than `sessions` lists: listMembers from here. */
  sessionsNext: Type.Optional(MembersCursor),
  /**
   * RTCIceServer[] for the client's RTCPeerConnection, when the gateway has TURN_URLS: STUN
   * URLs bare, TURN URLs with ephemeral credentials (coturn's REST scheme) that expire with
   * the token at the latest. Added by the gateway; `refreshTokenR` brings new ones.
   */
  iceServers: Type.Optional(IceServerList),
});
export type JoinReply = Static<typeof JoinReply>;

/**
 * Resume a session: its socketId and its current resumeToken (AUTH_FAILED without the right
 * one; the session and its socket, if still open, are untouched). `bearer` optionally
 * presents a fresher token of the same user at the same time (as `refreshToken` does).
 *
 * `nextResumeToken` optionally proposes the token that replaces the one spent (32 random
 * bytes of the client's, base64url; not the current one): a client whose reconnect got no
 * reply then knows both candidates and tries the proposed one first, instead of joining
 * again. Without it the gateway draws one.
 */
export const ReconnectData = Type.Object({
  socketId: SocketId,
  resumeToken: Type.Optional(ResumeToken),
  nextResumeToken: Type.Optional(ResumeToken),
  bearer: Type.Optional(Bearer),
  /**
   * Extension: the client reads `eventBatch`, as in `join` (the gateway the session resumes
   * on may not be the one it joined through).
   */
  batchEvents: Type.Optional(Type.Boolean()),
});
export type ReconnectData = Static<typeof ReconnectData>;
export const ReconnectReply = Type.Object({
  roomSize: Type.Integer({ minimum: 1 }),
  /** The next resumeToken (the proposed one, if any): the one just used is spent. */
  resumeToken: ResumeToken,
});

/**
 * Extension: present a fresh bearer token for the session, before the current one expires
 * (a session whose token expires is closed with 4003). It must name the same user (`sub`)
 * and grant the session's room; its grants replace the session's.
 */
export const RefreshTokenData = Type.Object({ bearer: Bearer });
export const RefreshTokenReply = Type.Object({
  /** When the new token expires, epoch ms. */
  expiresAt: Type.Integer({ minimum: 0 }),
  /** New TURN credentials, valid as long as the new token (when the gateway has TURN_URLS). */
  iceServers: Type.Optional(IceServerList),
});

export const ExchangeCandidateData = Type.Object({ to: SocketId, candidate: IceCandidate });
/** The SDP may arrive as the object or as its JSON text (older clients). */
export const ExchangeSdpData = Type.Object({
  to: SocketId,
  sdp: Type.Union([SessionDescription, Type.String({ maxLength: 65_536 })]),
});
export const OrientationChangeData = Type.Object({ orientation: Orientation, camera: Camera });

/** Client-sent notifications (no reply): every 60 s, and on a video freeze. */
export const CpuData = Type.Object({ cpuUsed: Type.Integer({ minimum: 0, maximum: 10_000 }) });

/**
 * Extension: `ping`, the client's heartbeat. Browsers cannot send WebSocket pings nor see the
 * gateway's, so a client that wants a read deadline sends this; the reply carries the
 * gateway's clock (epoch ms), which also tells the client how far its own clock is off.
 */
export const HeartbeatData = Type.Object({});
export const HeartbeatReply = Type.Object({ now: Type.Integer({ minimum: 0 }) });

/** Extension: the next page of the room's other members, after joinR's (see MembersCursor). */
export const ListMembersData = Type.Object({
  after: MembersCursor,
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MEMBERS_PAGE_MAX })),
});
export const ListMembersReply = Type.Object({
  sessions: Type.Array(Member, { maxItems: MEMBERS_PAGE_MAX }),
  /** Set when there are more: the next page starts here. */
  next: Type.Optional(MembersCursor),
});

/** Each client action: the schema of its `d` and of its reply's `d` (undefined: no data). */
export const ClientActions = {
  join: { data: JoinData, reply: JoinReply },
  ping: { data: HeartbeatData, reply: HeartbeatReply },
  reconnect: { data: ReconnectData, reply: ReconnectReply },
  refreshToken: { data: RefreshTokenData, reply: RefreshTokenReply },
  exchangeCandidate: { data: ExchangeCandidateData, reply: undefined },
  exchangeSdp: { data: ExchangeSdpData, reply: undefined },
  orientationChange: { data: OrientationChangeData, reply: undefined },
  listMembers: { data: ListMembersData, reply: ListMembersReply },
  ...HostActions,
} as const satisfies Record<string, { data: TSchema; reply: TSchema | undefined }>;
export type ClientAction = keyof typeof ClientActions;

/** Client → server messages that are not requests (no reply is sent). */
export const ClientNotifications = {
  eventCpu: CpuData,
  /** Sent without `d` (the document's form); an empty object is accepted too. */
  eventFreeze: Type.Object({}),
} as const;
export type ClientNotification = keyof typeof ClientNotifications;

// ------------------------------------------------------------------------------ events

/** Events one eventBatch carries at most. */
export const EVENT_BATCH_MAX_ITEMS = 1000;

/**
 * One event frame inside eventBatch: any server event but eventBatch itself, its `d` as that
 * event's own schema says (a client checks each one as it would the frame alone).
 */
export const BatchedEvent = Type.Object({
  a: Type.String({ pattern: '^event(?!Batch$)[A-Za-z]{1,58}$' }),
  d: Type.Optional(Type.Unknown()),
});

/** Numbers the server's requests to a client on one connection (see calls.ts). */
export const ServerRequestId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

export const ServerEvents = {
  eventExchangeCandidate: Type.Object({ from: Peer, candidate: IceCandidate }),
  eventExchangeSdp: Type.Object({ from: Peer, sdp: SessionDescription }),
  eventUserMediaConfiguration: UserMediaConfiguration,
  /** Extension: a member arrived (hidden members never do). */
  eventJoin: Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 1 }),
    ...Member.properties,
  }),
  eventLeave: Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    socketId: SocketId,
    userId: UserId,
  }),
  eventOrientationChange: Type.Object({
    from: Peer,
    platform: ShortText,
    orientation: Orientation,
    camera: Camera,
  }),
  /**
   * A peer's video froze: reported by the peer itself (eventFreeze from a client), or by
   * the SFU when one of its producers' score drops to 0 or its bitrate stops (`producerId`).
   */
  eventFreeze: Type.Object({
    from: Peer,
    producerId: Type.Optional(Type.String({ maxLength: 64 })),
  }),
  /** The server no longer waits for its request `sid` (the caller's deadline passed). */
  eventRequestCancelled: Type.Object({ sid: ServerRequestId }),
  /**
   * Extension: the server API changed a member's name or metadata (to every member), or its
   * grants (`grants`: to that member only, who may now do what they say).
   */
  eventParticipantUpdated: Type.Object({
    ...Member.properties,
    grants: Type.Optional(SessionGrants),
  }),
  /**
   * Extension: the room as it is now, after this client may have missed some of its
   * broadcasts (its gateway was cut off from NATS or saw a gap in the room's sequence, or the
   * client resumed its session). It replaces what eventJoin, eventLeave, eventParticipantUpdated
   * and eventUserMediaConfiguration said before: members missing from `sessions` (the other
   * members) have left, new ones have arrived. `complete` is false when the room has more
   * members than one message carries (the first ones, in the order they joined, are listed).
   */
  eventRoomState: Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    sessions: Type.Array(Member),
    complete: Type.Boolean(),
    userMediaConfiguration: UserMediaConfiguration,
  }),
  /** Extension: data the server API sent to the room or to this member. */
  eventData: Type.Object({
    payload: Type.String({ maxLength: 65_536 }),
    topic: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  }),
  /**
   * Extension: several events in one frame, to be handled in order as if each had come
   * alone. Only a client that sent `batchEvents: true` in its join (or reconnect) gets it: a
   * big room's broadcasts (WS_BATCH_MIN_MEMBERS members or more on one gateway) are gathered
   * for WS_BATCH_MS and written as one frame, not one frame per event per member.
   */
  eventBatch: Type.Array(BatchedEvent, { minItems: 1, maxItems: EVENT_BATCH_MAX_ITEMS }),
  ...HostEvents,
} as const satisfies Record<string, TSchema>;
export type ServerEvent = keyof typeof ServerEvents;
export type ServerEventData<E extends ServerEvent> = Static<(typeof ServerEvents)[E]>;

/**
 * WebSocket close codes of the gateway (RFC 6455 §7.4 and the private 4000 range). After
 * 4001, 4004 and 4005 a client must not resume nor rejoin on its own.
 */
export const CloseCodes = {
  normal: 1000,
  unsupportedData: 1003,
  policyViolation: 1008,
  serviceRestart: 1012,
  tryAgainLater: 1013,
  /** Another connection resumed the session. */
  replaced: 4001,
  /** The session ended on the server (its reconnect window passed): join again. */
  expired: 4002,
  /** The session's token expired. */
  tokenExpired: 4003,
  /** The server API removed the member (the close reason says why). */
  removed: 4004,
  /** The server API deleted the room. */
  roomDeleted: 4005,
} as const;

// ---------------------------------------------------------------------------- envelope

export const RequestId = Type.Union([
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
]);
export type RequestId = Static<typeof RequestId>;

/** What every client frame must be before its action is looked at. */
export const ClientFrame = Type.Object({
  a: Type.String({ minLength: 1, maxLength: 64 }),
  d: Type.Optional(Type.Unknown()),
  id: Type.Optional(RequestId),
});
export type ClientFrame = Static<typeof ClientFrame>;
export const clientFrame = validator(ClientFrame);

export type ReplyFrame =
  | { a: string; s: true; d?: unknown; id?: RequestId }
  | { a: string; s: false; e: number; id?: RequestId };
export type EventFrame<E extends ServerEvent = ServerEvent> = { a: E; d: ServerEventData<E> };
/**
 * Any frame a gateway writes, as a client first reads it: a reply (`s`, with `d` or `e`, and
 * the request's `id`) or an event (`a` and `d`). What the tests and benchmarks that speak the
 * wire protocol by hand read frames as, before looking closer.
 */
export interface ServerFrame {
  a: string;
  d?: unknown;
  id?: RequestId;
  s?: boolean;
  e?: number;
}

export const clientActionData = Object.fromEntries(
  Object.entries(ClientActions).map(([k, v]) => [k, validator(v.data)]),
) as { [K in ClientAction]: ReturnType<typeof validator<(typeof ClientActions)[K]['data']>> };

export const serverEventData = Object.fromEntries(
  Object.entries(ServerEvents).map(([k, v]) => [k, validator(v)]),
) as { [K in ServerEvent]: ReturnType<typeof validator<(typeof ServerEvents)[K]>> };

export function replyOk(action: string, data?: unknown, id?: RequestId): ReplyFrame {
  const frame: ReplyFrame = { a: `${action}R`, s: true };
  if (data !== undefined) frame.d = data;
  if (id !== undefined) frame.id = id;
  return frame;
}

export function replyError(action: string, code: number, id?: RequestId): ReplyFrame {
  const frame: ReplyFrame = { a: `${action}R`, s: false, e: code };
  if (id !== undefined) frame.id = id;
  return frame;
}
