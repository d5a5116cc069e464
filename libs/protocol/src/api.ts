/**
 * The server API: what a team's backend calls to run its rooms (LiveKit's RoomService, over
 * HTTP JSON). Served by `services/api` on its own port — never on the gateway's public client
 * port — which turns each request into a bus request to the rooms service (`RoomsAdmin`
 * below) or a server-to-client call (calls.ts).
 *
 * Every request carries `Authorization: Bearer <token>`: a short-lived JWT (HS256) signed with
 * the secret of one of the platform's API keys (API_KEYS), naming the key in `iss` and saying
 * what it may do in `admin` (AdminGrants). No token, a bad one or an expired one → 401; a
 * grant that does not cover the request → 403. Errors have one body, ApiErrorBody, and an
 * HTTP status derived from the protocol's error code (`API_HTTP_STATUS`).
 *
 * `ApiRoutes` (api-routes.ts) is the single description of every endpoint: the service routes
 * and validates from it, the SDK's client is typed by it, and `docs/openapi.json` is
 * generated from it. This file holds the credentials, the resources and the rooms service's
 * admin RPCs (`RoomsAdmin`) the routes map onto.
 */
import Type, { type Static } from 'typebox';
import { rpcMethod } from './bus.ts';
import { Member, RoomId, SocketId } from './client.ts';
import { ApiKeyId } from './credentials.ts';
import { RoomGrant, SessionGrants, TokenGrants } from './auth.ts';
import { MediaId, MediaKind, MediaNodeId } from './media.ts';
import { ProducerSource } from './webrtc.ts';
import type {} from './errors.ts';

// ---------------------------------------------------------------------------- credentials

/**
 * What an API token allows (its `admin` claim). `rooms` scopes every grant: exact room ids
 * or `prefix*` patterns, as in a client token (absent: no room at all; `["*"]`: every room).
 */
export const AdminGrants = Type.Object({
  /** List rooms (only those `rooms` covers are listed) and read them and their participants. */
  roomList: Type.Optional(Type.Boolean()),
  /** Create rooms `rooms` covers (and change their settings). */
  roomCreate: Type.Optional(Type.Boolean()),
  /**
   * Administer rooms `rooms` covers: read, change and delete them; list, update and remove
   * their participants, mute their tracks, send them data and call their clients.
   */
  roomAdmin: Type.Optional(Type.Boolean()),
  rooms: Type.Optional(Type.Array(RoomGrant, { maxItems: 256 })),
});
export type AdminGrants = Static<typeof AdminGrants>;
export type AdminGrant = 'roomList' | 'roomCreate' | 'roomAdmin';

/** The claims of an API request's token (checked after its HS256 signature, `exp` and `nbf`). */
export const AdminClaims = Type.Object({
  /** The API key whose secret signed the token. */
  iss: ApiKeyId,
  /** Who is calling, for the service's logs (free text). */
  sub: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  exp: Type.Integer({ minimum: 0 }),
  iat: Type.Optional(Type.Integer({ minimum: 0 })),
  nbf: Type.Optional(Type.Integer({ minimum: 0 })),
  admin: AdminGrants,
});
export type AdminClaims = Static<typeof AdminClaims>;

// ------------------------------------------------------------------------------ resources

const Metadata = Type.String({ maxLength: 4096 });
const Name = Type.String({ maxLength: 128 });
const Capacity = Type.Integer({ minimum: 1, maximum: 100_000 });
/** Seconds an empty room is kept (0: closed as its last member leaves). */
const EmptyTimeout = Type.Integer({ minimum: 0, maximum: 30 * 86_400 });
const EpochMs = Type.Integer({ minimum: 0 });
/** How many items one page of a list holds at most (the routes' `limit`). */
export const PageLimit = Type.Integer({ minimum: 1, maximum: 1000 });

/**
 * A room. One made by a join (not by the API) has `emptyTimeoutS` 0: it closes as its last
 * member leaves. One created by the API waits `emptyTimeoutS` for a member (and after the
 * last one leaves), then closes; `null` keeps it until it is deleted.
 */
export const Room = Type.Object({
  roomId: RoomId,
  /** Most members admitted: the room's own capacity or the service's default. */
  capacity: Type.Integer({ minimum: 1 }),
  /** Whether `capacity` is the room's own (false: ROOM_DEFAULT_CAPACITY). */
  capacitySet: Type.Boolean(),
  emptyTimeoutS: Type.Union([EmptyTimeout, Type.Null()]),
  metadata: Type.Union([Metadata, Type.Null()]),
  createdAt: EpochMs,
  /** Members now (reconnecting ones included; hidden ones too). */
  roomSize: Type.Integer({ minimum: 0 }),
  /** The media node hosting the room's media, if any now. */
  mediaNodeId: Type.Union([MediaNodeId, Type.Null()]),
});
export type Room = Static<typeof Room>;

/** A published track (a producer of the room's media). */
export const Track = Type.Object({
  trackId: MediaId,
  kind: MediaKind,
  source: ProducerSource,
  /** Paused by the server (`muteTrack`): the publisher cannot resume it until unmuted. */
  muted: Type.Boolean(),
  publishedAt: EpochMs,
});
export type Track = Static<typeof Track>;

/** One member of a room, as the API sees it (more than the other members see: Member). */
export const Participant = Type.Object({
  ...Member.properties,
  platform: Type.String({ maxLength: 256 }),
  /** `disconnected`: in its reconnect window. */
  state: Type.Union([Type.Literal('active'), Type.Literal('disconnected')]),
  joinedAt: EpochMs,
  /** What the member may do now (its token's grants, with the API's changes applied). */
  grants: SessionGrants,
  tracks: Type.Array(Track),
});
export type Participant = Static<typeof Participant>;

// ------------------------------------------------------------------ the rooms service's RPCs

const RoomRef = Type.Object({ roomId: RoomId });
const ParticipantRef = Type.Object({ roomId: RoomId, socketId: SocketId });

export const CreateRoomRequest = Type.Object({
  roomId: RoomId,
  /** Absent or null: ROOM_DEFAULT_CAPACITY. */
  capacity: Type.Optional(Type.Union([Capacity, Type.Null()])),
  /** Absent: ROOM_EMPTY_TIMEOUT_S; null: kept until deleted. */
  emptyTimeoutS: Type.Optional(Type.Union([EmptyTimeout, Type.Null()])),
  metadata: Type.Optional(Metadata),
});
export type CreateRoomRequest = Static<typeof CreateRoomRequest>;
export const CreateRoomReply = Type.Object({
  /** false: the room existed, and is returned unchanged. */
  created: Type.Boolean(),
  room: Room,
});

/** Fields left out are unchanged; null resets one to its default. */
export const UpdateRoomRequest = Type.Object({
  roomId: RoomId,
  capacity: Type.Optional(Type.Union([Capacity, Type.Null()])),
  emptyTimeoutS: Type.Optional(Type.Union([EmptyTimeout, Type.Null()])),
  metadata: Type.Optional(Type.Union([Metadata, Type.Null()])),
});
export type UpdateRoomRequest = Static<typeof UpdateRoomRequest>;

export const ListRoomsRequest = Type.Object({
  /** The page after this room id (rooms are listed by id). */
  after: Type.Optional(RoomId),
  limit: PageLimit,
  /** Only rooms these grants cover (the caller's token's `rooms`). */
  only: Type.Array(RoomGrant, { maxItems: 256 }),
});
export const ListRoomsReply = Type.Object({
  rooms: Type.Array(Room),
  /** The `after` of the next page; absent on the last one. */
  next: Type.Optional(RoomId),
});

export const DeleteRoomReply = Type.Object({
  /** Members the deletion removed. */
  removed: Type.Integer({ minimum: 0 }),
});

export const ListParticipantsRequest = Type.Object({
  roomId: RoomId,
  after: Type.Optional(SocketId),
  limit: PageLimit,
});
export const ListParticipantsReply = Type.Object({
  participants: Type.Array(Participant),
  next: Type.Optional(SocketId),
});

export const RemoveParticipantRequest = Type.Object({
  ...ParticipantRef.properties,
  /** Told to the client (its socket's close reason). */
  reason: Type.Optional(Type.String({ maxLength: 100 })),
});

/** Fields left out are unchanged; a null name or metadata removes it. */
export const UpdateParticipantRequest = Type.Object({
  ...ParticipantRef.properties,
  name: Type.Optional(Type.Union([Name, Type.Null()])),
  metadata: Type.Optional(Type.Union([Metadata, Type.Null()])),
  /**
   * Grants that replace the token's, field by field, for the rest of the session (a token
   * refresh does not undo them). Revoking publishing closes the tracks no longer allowed.
   */
  grants: Type.Optional(TokenGrants),
});
export type UpdateParticipantRequest = Static<typeof UpdateParticipantRequest>;

export const MuteTrackRequest = Type.Object({
  ...ParticipantRef.properties,
  trackId: MediaId,
  muted: Type.Boolean(),
});

/** Data is text (base64 it for bytes); it reaches clients as eventData. */
export const SendDataRequest = Type.Object({
  roomId: RoomId,
  payload: Type.String({ maxLength: 65_536 }),
  topic: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  /** Only these members (absent: every member). */
  socketIds: Type.Optional(Type.Array(SocketId, { minItems: 1, maxItems: 1000 })),
});
export type SendDataRequest = Static<typeof SendDataRequest>;
export const SendDataReply = Type.Object({
  /** Members the data was sent to (those connected now). */
  recipients: Type.Integer({ minimum: 0 }),
});

const Empty = Type.Object({});

/** The rooms service's administration RPCs, which the server API is a front for. */
export const RoomsAdmin = {
  createRoom: rpcMethod('rooms', 'createRoom', CreateRoomRequest, CreateRoomReply),
  updateRoom: rpcMethod('rooms', 'updateRoom', UpdateRoomRequest, Room),
  /** ROOM_NOT_FOUND for a room that does not exist. */
  getRoom: rpcMethod('rooms', 'getRoom', RoomRef, Room),
  listRooms: rpcMethod('rooms', 'listRooms', ListRoomsRequest, ListRoomsReply),
  /** Every member removed (told, closed, unable to resume), then the room closed. */
  deleteRoom: rpcMethod('rooms', 'deleteRoom', RoomRef, DeleteRoomReply),
  listParticipants: rpcMethod(
    'rooms',
    'listParticipants',
    ListParticipantsRequest,
    ListParticipantsReply,
  ),
  getParticipant: rpcMethod('rooms', 'getParticipant', ParticipantRef, Participant),
  removeParticipant: rpcMethod('rooms', 'removeParticipant', RemoveParticipantRequest, Empty),
  updateParticipant: rpcMethod('rooms', 'updateParticipant', UpdateParticipantRequest, Participant),
  muteTrack: rpcMethod('rooms', 'muteTrack', MuteTrackRequest, Track),
  sendData: rpcMethod('rooms', 'sendData', SendDataRequest, SendDataReply),
} as const;
