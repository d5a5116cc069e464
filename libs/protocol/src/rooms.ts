/**
 * The rooms service's RPCs (`Rooms`), with their requests and replies: joins, resumes and
 * leaves, a room's state and members, room.live ticks, a gateway's resync. The messages
 * gateways exchange among themselves are signaling.ts's.
 */
import Type, { type Static } from 'typebox';
import { rpcMethod } from './bus.ts';
import {
  Camera,
  DeviceFields,
  JoinReply,
  ListMembersReply,
  MEMBERS_PAGE_MAX,
  Member,
  MembersCursor,
  Orientation,
  RoomId,
  SocketId,
  UserId,
  UserMediaConfiguration,
} from './client.ts';
import {
  MediaAssignment,
  MediaNodeId,
  MediaNodeLeft,
  RoomsMediaNodeRequest,
  TrackChange,
} from './media.ts';
import { SessionGrants } from './auth.ts';
import {} from './validate.ts';

const ShortText = Type.String({ maxLength: 256 });
/** A gateway's instance id: a single subject token. */
export const GatewayId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
/** One WebSocket connection's attachment to a session; changes on every reconnect. */
export const ConnectionId = Type.String({ pattern: '^[0-9a-f]{32}$' });

// ------------------------------------------------------------------------------ rooms RPCs

/**
 * SHA-256 of a session's ResumeToken, lower-case hex. The gateway hashes the token it hands
 * out (and the one a client presents); the token itself never crosses the bus.
 */
export const ResumeHash = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** When the bearer token a session holds expires, epoch ms. */
const TokenExpiresAt = Type.Integer({ minimum: 0 });

/** What a session's token says, kept with the session (set at join, replaced on refresh). */
export const SessionAuth = Type.Object({
  tokenExpiresAt: TokenExpiresAt,
  grants: SessionGrants,
});
export type SessionAuth = Static<typeof SessionAuth>;

/**
 * When the gateway process started, epoch ms by the gateway's own clock: the same value as
 * its heartbeats' `startedAt`, and only ever compared with those (a restart is a later value),
 * so no two clocks are compared. Optional while a gateway from before it may still run.
 */
const GatewayStartedAt = Type.Optional(Type.Integer({ minimum: 0 }));

export const RoomsJoinRequest = Type.Object({
  socketId: SocketId,
  connectionId: ConnectionId,
  gatewayId: GatewayId,
  gatewayStartedAt: GatewayStartedAt,
  roomId: RoomId,
  userId: UserId,
  ...DeviceFields,
  ip: Type.Optional(ShortText),
  resumeHash: ResumeHash,
  ...SessionAuth.properties,
  /** From the token: shown to the other members. */
  name: Type.Optional(Type.String({ maxLength: 128 })),
  metadata: Type.Optional(Type.String({ maxLength: 4096 })),
  /** What the client said it sends at (JoinData.bitrate). */
  bitrate: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type RoomsJoinRequest = Static<typeof RoomsJoinRequest>;
/**
 * The room's broadcast sequence after a change: every room broadcast of a change of its
 * state (eventJoin, eventLeave, eventParticipantUpdated, with the eventUserMediaConfiguration
 * they cause) carries the next number, so a gateway that sees a gap knows it missed some and
 * resyncs its members (eventRoomState). Kept per room for the room's whole life (across its
 * closing and re-opening, like the durable events' seq); changes no member sees (hidden
 * members) take no number.
 */
export const RoomSeq = Type.Integer({ minimum: 0 });

/** joinR as the rooms service makes it; the gateway adds the resumeToken and iceServers. */
export const RoomsJoinReply = Type.Object({
  ...Type.Omit(JoinReply, ['resumeToken', 'iceServers']).properties,
  /** The room's broadcast sequence with this join (the gateway keeps it, the client never sees it). */
  roomSeq: Type.Optional(RoomSeq),
});
export type RoomsJoinReply = Static<typeof RoomsJoinReply>;

export const SessionState = Type.Union([Type.Literal('active'), Type.Literal('disconnected')]);
export type SessionState = Static<typeof SessionState>;

/** Who a session belongs to and what its token allows (the first half of a reconnect). */
export const SessionInfo = Type.Object({
  socketId: SocketId,
  roomId: RoomId,
  userId: UserId,
  platform: ShortText,
  state: SessionState,
  ...SessionAuth.properties,
});
export type SessionInfo = Static<typeof SessionInfo>;

/**
 * The proof a gateway presents for a session: the hash of the resumeToken its client gave
 * (AUTH_FAILED unless it is the session's current one), or `null` when the gateway resumes
 * by socketId alone (GATEWAY_LEGACY_RESUME, unsafe; off by default).
 */
const ResumeProof = Type.Union([ResumeHash, Type.Null()]);

export const RoomsLookupRequest = Type.Object({ socketId: SocketId, resumeHash: ResumeProof });

export const RoomsReconnectRequest = Type.Object({
  socketId: SocketId,
  /** The room the gateway subscribed to for this socket; must be the session's. */
  roomId: RoomId,
  connectionId: ConnectionId,
  gatewayId: GatewayId,
  gatewayStartedAt: GatewayStartedAt,
  ip: Type.Optional(ShortText),
  resumeHash: ResumeProof,
  /** The hash of the next resumeToken (the presented one is spent). */
  nextResumeHash: ResumeHash,
  /** A fresher token's expiry and grants, when the client presented one. */
  auth: Type.Optional(SessionAuth),
});
export const RoomsReconnectReply = Type.Object({
  session: SessionInfo,
  roomSize: Type.Integer({ minimum: 1 }),
  roomSeq: Type.Optional(RoomSeq),
});

/** A room's state for members that may have missed its broadcasts (see eventRoomState). */
export const RoomState = Type.Object({
  roomId: RoomId,
  /** The broadcast sequence this state includes. */
  roomSeq: RoomSeq,
  roomSize: Type.Integer({ minimum: 0 }),
  /** The visible members, in the order they joined; `complete` false when cut short. */
  sessions: Type.Array(Member),
  complete: Type.Boolean(),
  userMediaConfiguration: UserMediaConfiguration,
});
export type RoomState = Static<typeof RoomState>;

export const RoomsRefreshRequest = Type.Object({
  socketId: SocketId,
  /** Applies only while this connection is the session's attachment. */
  connectionId: ConnectionId,
  ...SessionAuth.properties,
});

export const RoomsDisconnectRequest = Type.Object({
  socketId: SocketId,
  /** Applies only while this connection is the session's attachment. */
  connectionId: ConnectionId,
  /** true: the client left (close code 1000) and the session ends now; false: it enters its reconnect window. */
  leave: Type.Boolean(),
});
export const RoomsDisconnectReply = Type.Object({
  /** false when the connection was no longer attached (replaced, or the session ended). */
  applied: Type.Boolean(),
});

export const RoomsOrientationRequest = Type.Object({
  socketId: SocketId,
  connectionId: ConnectionId,
  orientation: Orientation,
  camera: Camera,
});

export const RoomMember = Type.Object({
  socketId: SocketId,
  userId: UserId,
  platform: ShortText,
  state: SessionState,
  gatewayId: GatewayId,
});
/**
 * The most bytes of JSON in one message that lists a room's members: a room.live event, a
 * roomInfo reply. Half NATS's default max_payload (1 MiB), so headers and
 * the reply envelope fit beside it whatever the members' ids; longer lists are paged. At about
 * 60 bytes a member (room.live) a message holds some 8,000 members, at about 130 (roomInfo)
 * some 4,000.
 */
export const MEMBER_LIST_MAX_BYTES = 512 * 1024;

export const RoomInfo = Type.Object({
  roomId: RoomId,
  /** The capacity in force (the room's own, or the default). */
  capacity: Type.Integer({ minimum: 1 }),
  /** The room's members, all of them (also when `sessions` is one page of them). */
  roomSize: Type.Integer({ minimum: 0 }),
  /** The members in the order they joined: all, or one page of them (see `next`). */
  sessions: Type.Array(RoomMember),
  /** The media node the room's media is assigned to (null: none now). */
  mediaNodeId: Type.Optional(Type.Union([MediaNodeId, Type.Null()])),
  /**
   * More members follow: ask again with `after` = this. Absent when `sessions` ends the list.
   */
  next: Type.Optional(MembersCursor),
});
export type RoomInfo = Static<typeof RoomInfo>;
export const RoomInfoRequest = Type.Object({
  roomId: RoomId,
  /** Members after this cursor (a previous reply's `next`); from the first without it. */
  after: Type.Optional(MembersCursor),
  /**
   * Most members in the reply; without it, as many as fit MEMBER_LIST_MAX_BYTES. The reply
   * holds fewer (and `next`) when they would not fit.
   */
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
});

/** One room.live tick, published by the rooms service (see Rooms.publishLive). */
export const PublishLiveRequest = Type.Object({
  /** The tick's time, epoch ms: every message of the tick carries it as `ts`. */
  ts: Type.Integer({ minimum: 0 }),
  /**
   * Most bytes of one message's JSON (default and cap: MEMBER_LIST_MAX_BYTES): a room whose
   * members do not fit goes out in parts.
   */
  maxBytes: Type.Optional(Type.Integer({ minimum: 4096, maximum: MEMBER_LIST_MAX_BYTES })),
});
export const PublishLiveReply = Type.Object({
  /** Rooms with members in the snapshot. */
  rooms: Type.Integer({ minimum: 0 }),
  /** Messages published (a room in parts counts each part). */
  messages: Type.Integer({ minimum: 0 }),
});

const Empty = Type.Object({});

const Attachment = Type.Object({ socketId: SocketId, connectionId: ConnectionId });
/** A gateway's sockets, after it was cut off from NATS (in chunks of at most 500). */
export const RoomsResyncRequest = Type.Object({
  gatewayId: GatewayId,
  gatewayStartedAt: GatewayStartedAt,
  sessions: Type.Array(Attachment, { maxItems: 500 }),
});
export const RoomsResyncReply = Type.Object({
  /** Sessions that ended or moved to another connection: their sockets must close. */
  gone: Type.Array(Attachment),
});

export const Rooms = {
  /** Admit a new session (capacity checked in the same transaction as the insert). */
  join: rpcMethod('rooms', 'join', RoomsJoinRequest, RoomsJoinReply),
  /**
   * Look a session up by socketId and resume proof (SOCKET_ID_DOES_NOT_EXIST when it has
   * ended, AUTH_FAILED when the proof is wrong).
   */
  lookup: rpcMethod('rooms', 'lookup', RoomsLookupRequest, SessionInfo),
  /**
   * Attach a new connection to a session in its window, or replacing a stale one; checks the
   * proof again under the session's lock and rotates it (a resumeToken works once).
   */
  reconnect: rpcMethod('rooms', 'reconnect', RoomsReconnectRequest, RoomsReconnectReply),
  /**
   * Replace a session's token expiry and grants (the client sent refreshToken); replies with
   * the grants in force (the server API's changes still apply over the new token's).
   */
  refresh: rpcMethod(
    'rooms',
    'refresh',
    RoomsRefreshRequest,
    Type.Object({ grants: SessionGrants }),
  ),
  /** A connection closed: the session leaves now or enters its reconnect window. */
  disconnect: rpcMethod('rooms', 'disconnect', RoomsDisconnectRequest, RoomsDisconnectReply),
  /** Record a new orientation and broadcast eventOrientationChange to the room. */
  orientation: rpcMethod('rooms', 'orientation', RoomsOrientationRequest, Empty),
  /**
   * A gateway that was cut off from NATS lists its sockets: sessions still attached to them
   * are active again (the dead-gateway sweep may have put them in their window); the rest
   * are reported gone.
   */
  resync: rpcMethod('rooms', 'resync', RoomsResyncRequest, RoomsResyncReply),
  /** A page of a room's visible members but `socketId`, after `after` (see MembersCursor). */
  members: rpcMethod(
    'rooms',
    'members',
    Type.Object({
      roomId: RoomId,
      socketId: SocketId,
      after: MembersCursor,
      limit: Type.Integer({ minimum: 1, maximum: MEMBERS_PAGE_MAX }),
    }),
    ListMembersReply,
  ),
  /** A room's state for its members, with the broadcast sequence it includes. */
  roomState: rpcMethod('rooms', 'roomState', Type.Object({ roomId: RoomId }), RoomState),
  /**
   * A room's members and capacity (RoomInfo with roomSize 0 for an unknown room). A room too
   * big for one reply (MEMBER_LIST_MAX_BYTES) comes in pages: follow `next` until it is absent.
   */
  roomInfo: rpcMethod('rooms', 'roomInfo', RoomInfoRequest, RoomInfo),
  /**
   * Which media node hosts the socket's room: the recorded one while it heartbeats, else the
   * least-loaded live node (recorded). SOCKET_ID_DOES_NOT_EXIST unless the session is
   * attached through `connectionId`.
   */
  mediaNode: rpcMethod('rooms', 'mediaNode', RoomsMediaNodeRequest, MediaAssignment),
  /**
   * Publish one room.live tick: a snapshot of every room with members, read in one database
   * snapshot and published by the replica that takes the request (room.live's messages go out
   * before the reply). The caller, the events service's leader, decides when; the rooms
   * service, which owns the membership, reads and publishes it in one pass.
   */
  publishLive: rpcMethod('rooms', 'publishLive', PublishLiveRequest, PublishLiveReply),
  /**
   * A media node's producers that began and ended, in the order they did (each change is
   * applied once: a replayed batch changes nothing). Kept as the room's tracks, with
   * track.published / track.unpublished events.
   */
  tracks: rpcMethod(
    'rooms',
    'tracks',
    Type.Object({
      nodeId: MediaNodeId,
      changes: Type.Array(TrackChange, { minItems: 1, maxItems: 256 }),
    }),
    Empty,
  ),
  /**
   * A media node is leaving (graceful shutdown): it is taken out of placement, its rooms
   * are unassigned and their members get eventMediaReset (reason `node`).
   */
  mediaNodeLeft: rpcMethod(
    'rooms',
    'mediaNodeLeft',
    MediaNodeLeft,
    Type.Object({ rooms: Type.Integer({ minimum: 0 }) }),
  ),
} as const;
