/**
 * Room lifecycle events for analytics subscribers, field for field as the original
 * signaling server published them (routing key = event name): `room.join`, `room.leave`,
 * and `room.live`, a periodic snapshot of every active room; plus `room.created` and
 * `room.closed`. They are published on `<prefix>.<event name>` (e.g. `sb.room.join`).
 *
 * The membership events (created, join, leave, closed) are durable: written to an outbox in
 * the same transaction as the membership change, then published to the JetStream stream
 * `roomEventStream(prefix)` with `Nats-Msg-Id` = the event's `id`, so a retried publish is
 * stored once. Each carries `id`, `ts` (epoch ms of the change) and `seq`, the room's own
 * sequence number (1, 2, 3… over the room's whole life, also across its closing and
 * re-creation), so a consumer can order a room's events and notice a gap.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Peer, RoomId, SocketId, UserId } from './client.ts';
import { validator } from './validate.ts';
import { jetStreamToken } from './bus.ts';

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
  }),
  'room.live': Type.Object({
    /** When the snapshot was read from the membership, epoch ms. */
    ts: Type.Integer({ minimum: 0 }),
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    sessions: Type.Array(Peer),
  }),
} as const satisfies Record<string, TSchema>;

export type RoomEventName = keyof typeof RoomEvents;
/** The events that go through the outbox and the stream. */
export type DurableRoomEventName = Exclude<RoomEventName, 'room.live'>;
/** The durable events: the subjects of the room-events stream. */
export const DURABLE_ROOM_EVENTS: readonly DurableRoomEventName[] = [
  'room.created',
  'room.join',
  'room.leave',
  'room.closed',
];
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
