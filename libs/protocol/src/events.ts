/**
 * Room lifecycle events for analytics subscribers, field for field as the original
 * signaling server published them (routing key = event name): `room.join`, `room.leave`,
 * and `room.live`, a periodic snapshot of every active room. They are published on
 * `<prefix>.<event name>` (e.g. `sb.room.join`).
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Peer, RoomId, SocketId, UserId } from './client.ts';
import { validator } from './validate.ts';

const Text = Type.String({ maxLength: 256 });

export const RoomEvents = {
  'room.join': Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 1 }),
    socketId: SocketId,
    userId: UserId,
    platform: Text,
    appVersion: Type.Optional(Text),
    version: Type.Optional(Text),
    ip: Type.Optional(Text),
    /** Bitrate announced for the session, bits per second. */
    bitrate: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  'room.leave': Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    socketId: SocketId,
    userId: UserId,
  }),
  'room.live': Type.Object({
    roomId: RoomId,
    roomSize: Type.Integer({ minimum: 0 }),
    sessions: Type.Array(Peer),
  }),
} as const satisfies Record<string, TSchema>;

export type RoomEventName = keyof typeof RoomEvents;
export type RoomEvent<E extends RoomEventName> = Static<(typeof RoomEvents)[E]>;

export const roomEvent = Object.fromEntries(
  Object.entries(RoomEvents).map(([k, v]) => [k, validator(v)]),
) as { [E in RoomEventName]: ReturnType<typeof validator<(typeof RoomEvents)[E]>> };

/** The subject a room event is published on. */
export function roomEventSubject(prefix: string, event: RoomEventName): string {
  return `${prefix}.${event}`;
}
