/**
 * The outbox: a room event is written in the transaction that changes membership, with the
 * room's next sequence number, so it exists exactly when the change does. OutboxRelay
 * publishes it afterwards.
 */
import type { DurableRoomEventName, RoomEvent } from '@switchboard/protocol';
import type { Prisma } from '../generated/prisma/client.ts';

type Tx = Prisma.TransactionClient;
/** An event's payload: everything but the envelope the outbox adds (id, ts, seq). */
export type EventPayload<E extends DurableRoomEventName> = Omit<RoomEvent<E>, 'id' | 'ts' | 'seq'>;

/**
 * Record `type` for `payload.roomId` in `tx` (the room's row must be locked by `tx`): see
 * sb_record_event, which numbers it and adds its id and the database's time.
 */
export async function recordEvent<E extends DurableRoomEventName>(
  tx: Tx,
  type: E,
  payload: EventPayload<E>,
): Promise<void> {
  await tx.$executeRaw`SELECT sb_record_event(${payload.roomId}, ${type}, ${JSON.stringify(payload)}::jsonb)`;
}
