/**
 * The server API's HTTP routes (`ApiRoutes`): each operation's method, path, parameters,
 * body and replies, its error statuses, and the call endpoint's body and result. The
 * resources and the rooms service's admin RPCs they map onto are api.ts's.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { RoomId, SocketId, UserId } from './client.ts';
import { MediaId } from './media.ts';
import { ServerRequestName } from './calls.ts';
import type { ErrorName } from './errors.ts';
import {
  CreateRoomReply,
  CreateRoomRequest,
  DeleteRoomReply,
  ListParticipantsReply,
  ListRoomsReply,
  PageLimit,
  Participant,
  Room,
  SendDataReply,
  SendDataRequest,
  Track,
  UpdateParticipantRequest,
  UpdateRoomRequest,
  type AdminGrant,
} from './api.ts';

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
