/**
 * Room lifecycle events for analytics subscribers, field for field as the original
 * signaling server published them (routing key = event name): `room.join`, `room.leave`,
 * and `room.live`, a periodic snapshot of every active room; plus our own: `room.created`
 * and `room.closed` (the room's row was made — by a first join or the server API — and
 * removed: its last member left, its empty timeout passed, or the API deleted it),
 * `participant.updated` (the server API changed a member), `track.published`,
 * `track.unpublished` and `track.muted`. They are published on `<prefix>.<event name>`
 * (e.g. `sb.room.join`).
 *
 * All but room.live are durable: written to an outbox in the same transaction as the change,
 * then published to the JetStream stream `roomEventStream(prefix)` with `Nats-Msg-Id` = the
 * event's `id`, so a retried publish is stored once. Each carries `id`, `ts` (epoch ms of the
 * change) and `seq`, the room's own sequence number (1, 2, 3… over the room's whole life,
 * also across its closing and re-creation), so a consumer can order a room's events and
 * notice a gap. Webhooks deliver them (webhooks.ts). */
import Type, { type Static, type TSchema } from 'typebox';
import { Peer, RoomId, SocketId, UserId } from './client.ts';
import { validator } from './validate.ts';
import { jetStreamToken } from './bus.ts';
import { SessionGrants } from './auth.ts';
import { MediaId, MediaKind } from './media.ts';
import { ProducerSource } from './webrtc.ts';

const Text = Type.String({ maxLength: 256 });

/** What every durable event carries besides its payload. */
const Envelope = {
  /** Unique (a UUID): the JetStream de-duplication id. */
  id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }),
  /** When the membership change committed, epoch ms. */
  ts: Type.Integer({ minimum: 0 }),
  /** The room's sequence number: consecutive per room. */
  seq: Type.Integer({ minimum: 1 }),
};

export const LeaveReason = Type.Union([
  Type.Literal('left'),
  Type.Literal('expired'),
  Type.Literal('removed'),
  Type.Literal('deleted'),
]);
export type LeaveReason = Static<typeof LeaveReason>;

const TrackFields = {
  roomId: RoomId,
  socketId: SocketId,
  userId: UserId,
  trackId: MediaId,
  kind: MediaKind,
  source: ProducerSource,
};

export const RoomEvents = {
  'room.created': Type.Object({ ...Envelope, roomId: RoomId }),
  'room.closed': Type.Object({ ...Envelope, roomId: RoomId }),
  'room.join': Type.Object({
    ...Envelope,
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 1 }),
    socketId: SocketId,
    userId: UserId,
    platform: Text,
    appVersion: Type.Optional(Text),
    version: Type.Optional(Text),
    ip: Type.Optional(Text),
    /**
     * The send bitrate the client announced in `join` (an optional extension field), bits
     * per second; null when it announced none.
     */
    bitrate: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
  }),
  'room.leave': Type.Object({
    ...Envelope,
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    socketId: SocketId,
    userId: UserId,
    /**
     * Why (extension): `left` (the client left), `expired` (its reconnect window passed),
     * `removed` (the server API removed it), `deleted` (the server API deleted the room).
     */
    reason: Type.Optional(LeaveReason),
  }),
  /** The server API changed a member's name, metadata or grants. */
  'participant.updated': Type.Object({
    ...Envelope,
    roomId: RoomId,
    socketId: SocketId,
    userId: UserId,
    name: Type.Optional(Type.String({ maxLength: 128 })),
    metadata: Type.Optional(Type.String({ maxLength: 4096 })),
    grants: SessionGrants,
  }),
  /** A member published a track (a producer on the room's media node). */
  'track.published': Type.Object({ ...Envelope, ...TrackFields }),
  /** A track ended (closed by its publisher, by the server, or as its member left). */
  'track.unpublished': Type.Object({ ...Envelope, ...TrackFields }),
  /** The server API muted or unmuted a track. */
  'track.muted': Type.Object({ ...Envelope, ...TrackFields, muted: Type.Boolean() }),
  /**
   * A snapshot of a room with members, every ROOM_LIVE_INTERVAL_MS: one message per room, or,
   * for a room whose members do not fit one message (MEMBER_LIST_MAX_BYTES, some 8,000
   * members), consecutive parts numbered by `part`, each with the next members, `more: true`
   * on all but the last. A consumer joins the parts of one (roomId, ts); a tick's messages
   * are not stored, so one that misses the last part drops the room until the next tick.
   */
  'room.live': Type.Object({
    /**
     * When the tick began reading the membership, epoch ms: the same in every message of a
     * tick (so in every part of a room).
     */
    ts: Type.Integer({ minimum: 0 }),
    roomId: RoomId,
    /** The room's size when this message's members were read (all parts, not just this). */
    roomSize: Type.Integer({ minimum: 0 }),
    /** The members (of this part), in socketId order. */
    sessions: Type.Array(Peer),
    /** A room in parts: this one's number, 1, 2, 3…; absent for a room in one message. */
    part: Type.Optional(Type.Integer({ minimum: 1 })),
    /** A room in parts: whether more parts follow (false on the last); absent otherwise. */
    more: Type.Optional(Type.Boolean()),
  }),
} as const satisfies Record<string, TSchema>;

export type RoomEventName = keyof typeof RoomEvents;
/** The events that go through the outbox and the stream. */
export type DurableRoomEventName = Exclude<RoomEventName, 'room.live'>;
/** The durable events: the subjects of the room-events stream. */
export const DURABLE_ROOM_EVENTS = [
  'room.created',
  'room.join',
  'room.leave',
  'room.closed',
  'participant.updated',
  'track.published',
  'track.unpublished',
  'track.muted',
] as const satisfies readonly DurableRoomEventName[];
// Fails to compile when the list above misses a durable event.
true satisfies Exclude<DurableRoomEventName, (typeof DURABLE_ROOM_EVENTS)[number]> extends never
  ? true
  : false;
export type RoomEvent<E extends RoomEventName> = Static<(typeof RoomEvents)[E]>;

export const roomEvent = Object.fromEntries(
  Object.entries(RoomEvents).map(([k, v]) => [k, validator(v)]),
) as { [E in RoomEventName]: ReturnType<typeof validator<(typeof RoomEvents)[E]>> };

/** The subject a room event is published on. */
export function roomEventSubject(prefix: string, event: RoomEventName): string {
  return `${prefix}.${event}`;
}

/**
 * The JetStream stream holding the durable events, `<prefix>.room.{created,join,leave,closed}`
 * (room.live is not stored). Stream names cannot contain dots: the prefix's become `_`.
 */
export function roomEventStream(prefix: string): string {
  return `${jetStreamToken(prefix)}_ROOM_EVENTS`;
}

/** The NATS KV bucket of the events service's room.live leader lease. */
export function eventsLeaderBucket(prefix: string): string {
  return `${jetStreamToken(prefix)}_events_leader`;
}
