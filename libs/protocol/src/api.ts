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
 * `ApiRoutes` is the single description of every endpoint: the service routes and validates
 * from it, the SDK's client is typed by it, and `docs/openapi.json` is generated from it.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { rpcMethod } from './bus.ts';
import { Member, RoomId, SocketId, UserId } from './client.ts';
import { ApiKeyId } from './credentials.ts';
import { RoomGrant, SessionGrants, TokenGrants } from './auth.ts';
import { MediaId, MediaKind, MediaNodeId } from './media.ts';
import { ProducerSource } from './webrtc.ts';
import { ServerRequestName } from './calls.ts';
import type { ErrorName } from './errors.ts';

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
const PageLimit = Type.Integer({ minimum: 1, maximum: 1000 });

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

// ------------------------------------------------------------------------------ HTTP routes

/** The body of every error reply. */
export const ApiErrorBody = Type.Object({
  error: Type.Object({
    /** One of the protocol's error codes (errors.ts). */
    code: Type.Integer(),
    name: Type.String(),
    message: Type.String(),
  }),
});
export type ApiErrorBody = Static<typeof ApiErrorBody>;

/** The HTTP status of each error code. */
export const API_HTTP_STATUS = {
  SYSTEM: 500,
  JSON: 400,
  JSON_FIELD_MISSING: 400,
  JSON_FIELD_INVALID: 400,
  AUTH_FAILED: 401,
  PERMISSION_DENIED: 403,
  UNKNOWN_ACTION: 404,
  USER_NOT_AUTHENTICATED: 401,
  SOCKET_ID_DOES_NOT_EXIST: 404,
  ROOM_NOT_FOUND: 404,
  ROOM_IS_NOT_JOINABLE: 409,
  ROOM_ALREADY_JOINED: 409,
  ROOM_IS_FULL: 409,
  TOO_MANY_SESSIONS: 409,
  SDP_DECODE: 400,
  SERVICE_UNAVAILABLE: 503,
  TIMEOUT: 504,
  CANCELLED: 499,
  RATE_LIMITED: 429,
  SHUTTING_DOWN: 503,
  MEDIA_NOT_FOUND: 404,
  MEDIA_LIMIT: 409,
  MEDIA_RESET: 409,
  HOST_UNAVAILABLE: 404,
  CALL_REJECTED: 409,
  CALL_TIMEOUT: 504,
  CALL_LIMIT: 429,
  CALL_NOT_FOUND: 404,
} as const satisfies Record<ErrorName, number>;

/** One client's answer to a server-to-client call: its reply's data, or the error. */
export const CallResult = Type.Union([
  Type.Object({
    socketId: SocketId,
    userId: UserId,
    ok: Type.Literal(true),
    /** The client's reply (checked against the method's reply schema, calls.ts). */
    data: Type.Unknown(),
  }),
  Type.Object({
    socketId: SocketId,
    userId: UserId,
    ok: Type.Literal(false),
    /** The client's own error, TIMEOUT when it did not answer in time, … */
    error: ApiErrorBody.properties.error,
  }),
]);
export type CallResult = Static<typeof CallResult>;

export const CallRequestBody = Type.Object(
  {
    /** A server request the clients registered a handler for (calls.ts ServerRequests). */
    method: ServerRequestName,
    /** The method's data (checked against its schema). */
    data: Type.Unknown(),
    /** How long each client has to answer (default 5000). */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
  },
  { additionalProperties: false },
);
/** The default of CallRequestBody's `timeoutMs`. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * One endpoint. Path parameters are written `{name}` and described by `params`. The query and
 * the body admit no field their schema does not name (`additionalProperties: false`), and no
 * name is in more than one of params, query and body: the SDK takes them as one object.
 */
export interface ApiRoute {
  readonly method: HttpMethod;
  readonly path: string;
  readonly summary: string;
  readonly description?: string;
  /** The grant the token needs, for the room the request names (listRooms: any room). */
  readonly grant: AdminGrant | readonly AdminGrant[];
  readonly params: TSchema;
  readonly query?: TSchema;
  readonly body?: TSchema;
  /** The success status and its body (204: none). */
  readonly status: 200 | 201 | 204;
  readonly reply?: TSchema;
}

const route = <R extends ApiRoute>(r: R): R => r;
const closed = { additionalProperties: false } as const;
const NoParams = Type.Object({}, closed);
const RoomParams = Type.Object({ roomId: RoomId }, closed);
const ParticipantParams = Type.Object({ roomId: RoomId, socketId: SocketId }, closed);
/** The `limit` of a page when the query names none. */
export const DEFAULT_PAGE_LIMIT = 100;
const PageQuery = <T extends TSchema>(after: T) =>
  Type.Object(
    {
      after: Type.Optional(after),
      /** Default 100. */
      limit: Type.Optional(PageLimit),
    },
    closed,
  );

/** Every endpoint of the server API, by operation id. */
export const ApiRoutes = {
  createRoom: route({
    method: 'POST',
    path: '/v1/rooms',
    summary: 'Create a room (or get it unchanged when it exists)',
    description:
      '201 with the new room; 200 with the existing one, whose settings are not changed (PATCH changes them).',
    grant: 'roomCreate',
    params: NoParams,
    body: Type.Object(CreateRoomRequest.properties, closed),
    status: 201,
    reply: CreateRoomReply,
  }),
  listRooms: route({
    method: 'GET',
    path: '/v1/rooms',
    summary: 'List rooms, by id, a page at a time',
    description: 'Only the rooms the token covers (`admin.rooms`).',
    grant: 'roomList',
    params: NoParams,
    query: PageQuery(RoomId),
    status: 200,
    reply: ListRoomsReply,
  }),
  getRoom: route({
    method: 'GET',
    path: '/v1/rooms/{roomId}',
    summary: 'Get a room',
    grant: ['roomList', 'roomAdmin'],
    params: RoomParams,
    status: 200,
    reply: Room,
  }),
  updateRoom: route({
    method: 'PATCH',
    path: '/v1/rooms/{roomId}',
    summary: "Change a room's capacity, empty timeout or metadata",
    grant: ['roomCreate', 'roomAdmin'],
    params: RoomParams,
    body: Type.Omit(UpdateRoomRequest, ['roomId'], closed),
    status: 200,
    reply: Room,
  }),
  deleteRoom: route({
    method: 'DELETE',
    path: '/v1/rooms/{roomId}',
    summary: 'Delete a room: every member is removed (told why, and unable to resume)',
    grant: 'roomAdmin',
    params: RoomParams,
    status: 200,
    reply: DeleteRoomReply,
  }),
  listParticipants: route({
    method: 'GET',
    path: '/v1/rooms/{roomId}/participants',
    summary: "A room's members, by socketId, a page at a time",
    grant: ['roomList', 'roomAdmin'],
    params: RoomParams,
    query: PageQuery(SocketId),
    status: 200,
    reply: ListParticipantsReply,
  }),
  getParticipant: route({
    method: 'GET',
    path: '/v1/rooms/{roomId}/participants/{socketId}',
    summary: 'Get one member',
    grant: ['roomList', 'roomAdmin'],
    params: ParticipantParams,
    status: 200,
    reply: Participant,
  }),
  updateParticipant: route({
    method: 'PATCH',
    path: '/v1/rooms/{roomId}/participants/{socketId}',
    summary: "Change a member's name, metadata or grants (the member and its peers are told)",
    grant: 'roomAdmin',
    params: ParticipantParams,
    body: Type.Omit(UpdateParticipantRequest, ['roomId', 'socketId'], closed),
    status: 200,
    reply: Participant,
  }),
  removeParticipant: route({
    method: 'DELETE',
    path: '/v1/rooms/{roomId}/participants/{socketId}',
    summary: 'Remove a member: its socket closes (4004, with the reason) and cannot resume',
    grant: 'roomAdmin',
    params: ParticipantParams,
    query: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 100 })) }, closed),
    status: 204,
  }),
  muteTrack: route({
    method: 'POST',
    path: '/v1/rooms/{roomId}/participants/{socketId}/tracks/{trackId}/mute',
    summary:
      "Mute (or unmute) a member's track: paused on the server; the member is told and cannot resume it while muted",
    grant: 'roomAdmin',
    params: Type.Object({ roomId: RoomId, socketId: SocketId, trackId: MediaId }, closed),
    body: Type.Object({ muted: Type.Boolean() }, closed),
    status: 200,
    reply: Track,
  }),
  sendData: route({
    method: 'POST',
    path: '/v1/rooms/{roomId}/data',
    summary: 'Send data to every member, or to some (as eventData)',
    grant: 'roomAdmin',
    params: RoomParams,
    body: Type.Omit(SendDataRequest, ['roomId'], closed),
    status: 200,
    reply: SendDataReply,
  }),
  callParticipant: route({
    method: 'POST',
    path: '/v1/rooms/{roomId}/participants/{socketId}/calls',
    summary: 'Call a handler the member registered (getClientStats, requestMute) and get its reply',
    grant: 'roomAdmin',
    params: ParticipantParams,
    body: CallRequestBody,
    status: 200,
    reply: CallResult,
  }),
  callRoom: route({
    method: 'POST',
    path: '/v1/rooms/{roomId}/calls',
    summary: "Call every connected member's handler; each one's reply or error",
    grant: 'roomAdmin',
    params: RoomParams,
    body: CallRequestBody,
    status: 200,
    reply: Type.Object({ results: Type.Array(CallResult) }),
  }),
} as const satisfies Record<string, ApiRoute>;
export type ApiOperation = keyof typeof ApiRoutes;

export const API_OPERATIONS = Object.keys(ApiRoutes) as ApiOperation[];

/** The reply type of an operation (undefined for 204). */
export type ApiReply<O extends ApiOperation> = (typeof ApiRoutes)[O] extends {
  reply: infer R extends TSchema;
}
  ? Static<R>
  : undefined;

type Part<
  O extends ApiOperation,
  K extends 'params' | 'query' | 'body',
> = (typeof ApiRoutes)[O] extends { [P in K]: infer S extends TSchema } ? Static<S> : object;
/** An operation's path parameters. */
export type ApiParams<O extends ApiOperation> = Part<O, 'params'>;
/** An operation's query (as values, before they are written as strings). */
export type ApiQuery<O extends ApiOperation> = Part<O, 'query'>;
/** An operation's JSON body. */
export type ApiBody<O extends ApiOperation> = Part<O, 'body'>;
/** Everything an operation takes, as one object (params, query and body share no name). */
export type ApiInput<O extends ApiOperation> = ApiParams<O> & ApiQuery<O> & ApiBody<O>;

/** `{roomId}` → the names of a path's parameters, in order. */
export function pathParams(path: string): string[] {
  return [...path.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1] ?? '');
}

// The table's own rules, checked once: every `{name}` of a path is a param and the other way
// round; no name in two parts; queries and bodies closed.
for (const [op, r] of Object.entries(ApiRoutes) as [string, ApiRoute][]) {
  const names = (s: TSchema | undefined): string[] => {
    const props = (s as unknown as Record<string, unknown> | undefined)?.['properties'];
    return typeof props === 'object' && props !== null ? Object.keys(props) : [];
  };
  const params = names(r.params);
  if (pathParams(r.path).join() !== params.join()) {
    throw new Error(`ApiRoutes.${op}: the path's parameters are not its params`);
  }
  const all = [...params, ...names(r.query), ...names(r.body)];
  if (new Set(all).size !== all.length) throw new Error(`ApiRoutes.${op}: a name in two parts`);
  for (const s of [r.params, r.query, r.body]) {
    if (
      s !== undefined &&
      (s as { additionalProperties?: unknown }).additionalProperties !== false
    ) {
      throw new Error(`ApiRoutes.${op}: params, query and body must be closed objects`);
    }
  }
}
