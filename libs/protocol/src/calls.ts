/**
 * Server-to-client requests ("reverse RPC"): a service, an operator tool or a moderator's
 * backend calls a handler the client registered, on one client or on every member of a
 * room, and gets its reply or an error code back.
 *
 * Over NATS, the caller sends a request to the socket's own subject (signaling.ts):
 *
 *   <p>.sig.sock.<socketId>.<room>   {"call": {"method", "data"}}  → bus envelope of the reply
 *
 * and the gateway holding the socket writes it to the client:
 *
 *   server → client  {"a": method, "d": data, "sid": 7, "timeoutMs": 5000}
 *   client → server  {"a": method + "R", "sid": 7, "s": true, "d": reply}
 *                    {"a": method + "R", "sid": 7, "s": false, "e": code}
 *   server → client  {"a": "eventRequestCancelled", "d": {"sid": 7}}   the caller gave up
 *
 * `sid` numbers the server's requests on one connection (they never mix with the client's
 * own `id`s). The client's reply is validated against the method's schema before it goes
 * back to the caller; a client that does not answer within `timeoutMs` is answered TIMEOUT
 * for, and is told with eventRequestCancelled. A member in its reconnect window has no
 * socket: SOCKET_ID_DOES_NOT_EXIST.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Peer, ServerRequestId } from './client.ts';
import { MediaId, MediaKind } from './media.ts';
import { ProducerSource } from './webrtc.ts';
import { validator, type Validator } from './validate.ts';

const Count = Type.Integer({ minimum: 0 });
const Rate = Type.Number({ minimum: 0 });

/** What a client reports of its media: enough to see, from the server, how a call goes. */
export const ClientStats = Type.Object({
  /** When the client took these figures (its clock, epoch ms). */
  at: Type.Integer({ minimum: 0 }),
  /** Connection state of each WebRTC transport (RTCPeerConnection states). */
  transports: Type.Array(
    Type.Object({
      direction: Type.Union([Type.Literal('send'), Type.Literal('recv')]),
      state: Type.String({ maxLength: 32 }),
    }),
    { maxItems: 16 },
  ),
  producers: Type.Array(
    Type.Object({ id: MediaId, kind: MediaKind, source: ProducerSource, paused: Type.Boolean() }),
    { maxItems: 64 },
  ),
  consumers: Type.Array(
    Type.Object({ id: MediaId, kind: MediaKind, peer: Peer, paused: Type.Boolean() }),
    { maxItems: 1024 },
  ),
  /** Bits per second sent and received over the last measurement interval. */
  sendBitrate: Rate,
  recvBitrate: Rate,
  /** Inbound RTP packets lost, over the consumers' lives. */
  packetsLost: Count,
  /** Round-trip time to the SFU from the send transport's ICE pair, ms (absent: unknown). */
  rttMs: Type.Optional(Rate),
});
export type ClientStats = Static<typeof ClientStats>;

/**
 * The requests a server may send a client: the schema of `d` and of the reply's `d`. A client
 * that registered no handler for one answers UNKNOWN_ACTION.
 */
export const ServerRequests = {
  /** Report this client's media figures (for support tools and dashboards). */
  getClientStats: { data: Type.Object({}), reply: ClientStats },
  /**
   * A moderator asks the member to mute one source (its microphone, usually). The client
   * decides: `muted` says whether it did (a client may refuse, or have nothing to mute).
   */
  requestMute: {
    data: Type.Object({
      source: ProducerSource,
      reason: Type.Optional(Type.String({ maxLength: 256 })),
    }),
    reply: Type.Object({ muted: Type.Boolean() }),
  },
} as const satisfies Record<string, { data: TSchema; reply: TSchema }>;
export type ServerRequest = keyof typeof ServerRequests;
export type ServerRequestData<M extends ServerRequest> = Static<(typeof ServerRequests)[M]['data']>;
export type ServerRequestReply<M extends ServerRequest> = Static<
  (typeof ServerRequests)[M]['reply']
>;
export const SERVER_REQUESTS = Object.keys(ServerRequests) as ServerRequest[];

export function isServerRequest(a: string): a is ServerRequest {
  return Object.hasOwn(ServerRequests, a);
}

/** Every method of ServerRequests (spelled out: a union's type needs its members listed). */
export const ServerRequestName = Type.Union([
  Type.Literal('getClientStats'),
  Type.Literal('requestMute'),
]);
// Fails to compile when the list above and ServerRequests disagree.
true satisfies [Static<typeof ServerRequestName>] extends [ServerRequest]
  ? [ServerRequest] extends [Static<typeof ServerRequestName>]
    ? true
    : false
  : false;

/** What the gateway writes to the client. */
export interface ServerRequestFrame<M extends ServerRequest = ServerRequest> {
  a: M;
  d: ServerRequestData<M>;
  sid: number;
  timeoutMs: number;
}
export const ServerRequestFrameSchema = Type.Object({
  a: ServerRequestName,
  d: Type.Unknown(),
  sid: ServerRequestId,
  timeoutMs: Type.Integer({ minimum: 1 }),
});
export const serverRequestFrame = validator(ServerRequestFrameSchema);

/** The client's answer to a server request (its `d` is checked against the method's reply). */
export const ClientReplyFrame = Type.Union([
  Type.Object({
    a: Type.String({ minLength: 2, maxLength: 65 }),
    sid: ServerRequestId,
    s: Type.Literal(true),
    d: Type.Unknown(),
  }),
  Type.Object({
    a: Type.String({ minLength: 2, maxLength: 65 }),
    sid: ServerRequestId,
    s: Type.Literal(false),
    e: Type.Integer({ minimum: 0 }),
  }),
]);
export type ClientReplyFrame = Static<typeof ClientReplyFrame>;
export const clientReplyFrame = validator(ClientReplyFrame);

/** A call to one socket over NATS (on its relay subject, next to event relays). */
export const SocketCall = Type.Object({
  call: Type.Object({ method: ServerRequestName, data: Type.Unknown() }),
});
export type SocketCall = Static<typeof SocketCall>;

/** Validators of each server request's `d` and of its reply's `d`. */
export const serverRequestData = Object.fromEntries(
  SERVER_REQUESTS.map((m) => [m, validator(ServerRequests[m].data)]),
) as { [M in ServerRequest]: Validator<(typeof ServerRequests)[M]['data']> };
export const serverRequestReply = Object.fromEntries(
  SERVER_REQUESTS.map((m) => [m, validator(ServerRequests[m].reply)]),
) as { [M in ServerRequest]: Validator<(typeof ServerRequests)[M]['reply']> };
