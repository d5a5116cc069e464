/**
 * Signaling across processes: the NATS messages that carry events to client sockets on
 * whichever gateway holds them. The rooms service's RPCs (membership in PostgreSQL) are
 * rooms.ts's.
 *
 * Subjects (all under the deployment prefix `<p>`):
 *
 *   <p>.rooms.rpc.<method>        rooms RPCs, queue group `sb-rooms` (see bus.ts)
 *   <p>.sig.room.<room>           a room broadcast: published once, every gateway with
 *                                 members in the room subscribes once and fans it out
 *   <p>.sig.sock.<socketId>.<room>  a relay to one socket (request/reply). The gateway
 *                                 holding the socket subscribes `<p>.sig.sock.<socketId>.*`
 *                                 and delivers only when `<room>` is the socket's own room:
 *                                 a relay never crosses rooms
 *   <p>.sig.call.<socketId>.<room>  a server-to-client call to one socket (request/reply),
 *                                 delivered the same way (calls.ts)
 *   <p>.sig.gw.<gatewayId>.ctl    control messages to one gateway (detach a socket)
 *   <p>.sig.gw.<gatewayId>.relay  relays from one gateway to sockets held by another, in
 *                                 batches (request/reply; gateways only): the sender learns
 *                                 where a socket is from the reply to its first relay on
 *                                 `sig.sock`, then batches what it relays there in one
 *                                 event-loop turn. Each item names the sender's room and is
 *                                 delivered only to a socket attached in that room
 *   <p>.sig.gw.heartbeat          every gateway's liveness, every GATEWAY_HEARTBEAT_MS
 *   <p>.telemetry.cpu|freeze      client telemetry (eventCpu, eventFreeze) for analytics
 *
 * `<room>` is the room id encoded as base64url (room ids may contain dots).
 */
import Type, { type Static } from 'typebox';
import { Member, RoomId, ServerEvents, SocketId, UserId, type ServerEvent } from './client.ts';
import { MediaEvents, type MediaEvent } from './media.ts';
import { SocketCall } from './calls.ts';
import { SessionGrants } from './auth.ts';
import { validator } from './validate.ts';

import { ConnectionId, GatewayId } from './rooms.ts';

// ------------------------------------------------------------- messages between processes

const eventFrame = <E extends ServerEvent>(a: E) =>
  Type.Object({ a: Type.Literal(a), d: ServerEvents[a] });
const mediaFrame = <E extends MediaEvent>(a: E) =>
  Type.Object({ a: Type.Literal(a), d: MediaEvents[a] });

/** Every media event frame (sent by media nodes to one socket, or by the rooms service). */
const MediaEventFrames = [
  mediaFrame('eventNewConsumer'),
  mediaFrame('eventNewDataConsumer'),
  mediaFrame('eventConsumerClosed'),
  mediaFrame('eventDataConsumerClosed'),
  mediaFrame('eventProducerPaused'),
  mediaFrame('eventProducerResumed'),
  mediaFrame('eventConsumerScore'),
  mediaFrame('eventConsumerLayersChanged'),
  mediaFrame('eventActiveSpeaker'),
  mediaFrame('eventMediaReset'),
  mediaFrame('eventProducerMuted'),
] as const;
export const MediaEventFrame = Type.Union([...MediaEventFrames, eventFrame('eventFreeze')]);
export type MediaEventFrame = Static<typeof MediaEventFrame>;

/** One server event frame, as it is written to a client socket. */
export const EventFrameSchema = Type.Union([
  eventFrame('eventExchangeCandidate'),
  eventFrame('eventExchangeSdp'),
  eventFrame('eventUserMediaConfiguration'),
  eventFrame('eventJoin'),
  eventFrame('eventLeave'),
  eventFrame('eventOrientationChange'),
  eventFrame('eventFreeze'),
  eventFrame('eventRequestCancelled'),
  eventFrame('eventParticipantUpdated'),
  eventFrame('eventData'),
  eventFrame('eventRoomState'),
  eventFrame('eventCall'),
  eventFrame('eventCallCandidate'),
  eventFrame('eventCallCancelled'),
  ...MediaEventFrames,
]);
export type EventFrameMessage = Static<typeof EventFrameSchema>;

/** A room broadcast: every member socket gets the event, except `except` if set. */
export const RoomBroadcast = Type.Object({
  roomId: RoomId,
  event: EventFrameSchema,
  /** More events of the same change, delivered after `event`, in order. */
  more: Type.Optional(Type.Array(EventFrameSchema, { maxItems: 256 })),
  except: Type.Optional(SocketId),
  /** The room's broadcast sequence (RoomSeq): set on a change of the room's state. */
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
});
export type RoomBroadcast = Static<typeof RoomBroadcast>;
export const roomBroadcast = validator(RoomBroadcast);

/** The events a relay carries to one socket. */
const RelayedEvent = Type.Union([
  eventFrame('eventExchangeSdp'),
  eventFrame('eventExchangeCandidate'),
  ...MediaEventFrames,
  eventFrame('eventFreeze'),
  eventFrame('eventParticipantUpdated'),
  eventFrame('eventData'),
]);

/** A relay to one socket; the reply is a bus envelope (ok, or SOCKET_ID_DOES_NOT_EXIST). */
export const SocketRelay = Type.Object({ event: RelayedEvent });
export type SocketRelay = Static<typeof SocketRelay>;
export const socketRelay = validator(SocketRelay);
/** What arrives on a socket's subject: an event relay, or a server-to-client call. */
export const SocketMessage = Type.Union([SocketRelay, SocketCall]);
export type SocketMessage = Static<typeof SocketMessage>;
export const socketMessage = validator(SocketMessage);
/** The data of a relay's successful reply. */
export const SocketRelayAck = Type.Object({
  /**
   * The gateway holding the socket (a gateway answering says; others ignore it): where the
   * sender may batch its next relays to that socket (`sig.gw.<gatewayId>.relay`).
   */
  gatewayId: Type.Optional(GatewayId),
});
export type SocketRelayAck = Static<typeof SocketRelayAck>;
export const socketRelayAck = validator(SocketRelayAck);

/** Items a relay batch holds at most (a gateway sends more as several batches). */
export const RELAY_BATCH_MAX_ITEMS = 256;

/**
 * Relays from one gateway to sockets another one holds (`sig.gw.<gatewayId>.relay`). `roomId`
 * is the sender's room: an item reaches `to` only if it is attached there in that room.
 */
export const RelayBatch = Type.Object({
  items: Type.Array(Type.Object({ to: SocketId, roomId: RoomId, event: RelayedEvent }), {
    minItems: 1,
    maxItems: RELAY_BATCH_MAX_ITEMS,
  }),
});
export type RelayBatch = Static<typeof RelayBatch>;
export const relayBatch = validator(RelayBatch);
/**
 * The data of a batch's reply, item by item: true once the event was written to the socket,
 * false when the socket is not attached there in that room (it moved, left, or never was:
 * the sender asks `sig.sock` instead, whose answer is the final one).
 */
export const RelayBatchAck = Type.Object({
  delivered: Type.Array(Type.Boolean(), { maxItems: RELAY_BATCH_MAX_ITEMS }),
});
export type RelayBatchAck = Static<typeof RelayBatchAck>;
export const relayBatchAck = validator(RelayBatchAck);

export const DetachReason = Type.Union([
  /** Another connection reconnected with this socketId. */
  Type.Literal('replaced'),
  /** The session ended while the socket was still open (e.g. after a partition). */
  Type.Literal('expired'),
  /** The server API removed the member (close 4004). */
  Type.Literal('removed'),
  /** The server API deleted the room (close 4005). */
  Type.Literal('deleted'),
]);
export type DetachReason = Static<typeof DetachReason>;

export const GatewayControl = Type.Union([
  Type.Object({
    type: Type.Literal('detach'),
    socketId: SocketId,
    connectionId: ConnectionId,
    reason: DetachReason,
    /** Told to the client in the close reason (removed: the API's reason). */
    message: Type.Optional(Type.String({ maxLength: 100 })),
  }),
  /**
   * The server API changed the session's member (name, metadata) or grants: the connection
   * applies the grants at once and tells its client (eventParticipantUpdated, with them).
   */
  Type.Object({
    type: Type.Literal('updated'),
    socketId: SocketId,
    connectionId: ConnectionId,
    participant: Member,
    grants: SessionGrants,
  }),
]);
export type GatewayControl = Static<typeof GatewayControl>;
export const gatewayControl = validator(GatewayControl);

export const GatewayHeartbeat = Type.Object({
  gatewayId: GatewayId,
  /** When this gateway process started, epoch ms: a new value means a restart. */
  startedAt: Type.Integer({ minimum: 0 }),
  /** Sessions attached to this gateway now. */
  sockets: Type.Integer({ minimum: 0 }),
});
export type GatewayHeartbeat = Static<typeof GatewayHeartbeat>;
export const gatewayHeartbeat = validator(GatewayHeartbeat);

/** Who sent a piece of client telemetry, and when (epoch ms). */
const TelemetrySource = {
  roomId: RoomId,
  socketId: SocketId,
  userId: UserId,
  at: Type.Integer({ minimum: 0 }),
};

/** A client's eventCpu (`cpuUsed` in percent). */
export const CpuTelemetry = Type.Object({
  ...TelemetrySource,
  cpuUsed: Type.Integer({ minimum: 0, maximum: 10_000 }),
});
export type CpuTelemetry = Static<typeof CpuTelemetry>;
export const cpuTelemetry = validator(CpuTelemetry);

/** A client's eventFreeze. */
export const FreezeTelemetry = Type.Object(TelemetrySource);
export type FreezeTelemetry = Static<typeof FreezeTelemetry>;
export const freezeTelemetry = validator(FreezeTelemetry);

/** A room id as one subject token: base64url, no padding (room ids may contain dots). */
export function roomToken(roomId: string): string {
  return Buffer.from(roomId, 'utf8').toString('base64url');
}

export const signalingSubjects = {
  room: (prefix: string, roomId: string) => `${prefix}.sig.room.${roomToken(roomId)}`,
  socket: (prefix: string, socketId: string, roomId: string) =>
    `${prefix}.sig.sock.${socketId}.${roomToken(roomId)}`,
  /** What the gateway holding `socketId` subscribes to; the last token is the sender's room. */
  socketAny: (prefix: string, socketId: string) => `${prefix}.sig.sock.${socketId}.*`,
  /**
   * Server-to-client calls to one socket: a subject of their own (not the relays'), so the
   * bus's permissions can let gateways relay without letting them call clients.
   */
  call: (prefix: string, socketId: string, roomId: string) =>
    `${prefix}.sig.call.${socketId}.${roomToken(roomId)}`,
  callAny: (prefix: string, socketId: string) => `${prefix}.sig.call.${socketId}.*`,
  /**
   * The room token a socket's or a call's subject was sent on (its last token): which room
   * the sender addressed the socket in, checked against the room the socket is in.
   */
  senderRoom: (subject: string) => subject.slice(subject.lastIndexOf('.') + 1),
  gatewayControl: (prefix: string, gatewayId: string) => `${prefix}.sig.gw.${gatewayId}.ctl`,
  /** Relay batches to the sockets one gateway holds (gateways only). */
  gatewayRelay: (prefix: string, gatewayId: string) => `${prefix}.sig.gw.${gatewayId}.relay`,
  heartbeat: (prefix: string) => `${prefix}.sig.gw.heartbeat`,
  telemetryCpu: (prefix: string) => `${prefix}.telemetry.cpu`,
  telemetryFreeze: (prefix: string) => `${prefix}.telemetry.freeze`,
} as const;
