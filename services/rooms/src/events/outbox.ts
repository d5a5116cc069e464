/**
 * The outbox: a room event is written in the transaction that changes membership, with the
 * room's next sequence number, so it exists exactly when the change does. OutboxRelay
 * publishes it afterwards.
 */
import { randomUUID } from 'node:crypto';
import type { DurableRoomEventName, RoomEvent } from '@switchboard/protocol';
import type { Prisma } from '../generated/prisma/client.ts';

type Tx = Prisma.TransactionClient;
/** An event's payload: everything but the envelope the outbox adds (id, ts, seq). */
export type EventPayload<E extends DurableRoomEventName> = Omit<RoomEvent<E>, 'id' | 'ts' | 'seq'>;

/** Record `type` for `payload.roomId` in `tx` (the room's row must be locked by `tx`). */
export async function recordEvent<E extends DurableRoomEventName>(
  tx: Tx,
  type: E,
  payload: EventPayload<E>,
): Promise<void> {
  const id = randomUUID();
  const body = JSON.stringify({ id, ts: Date.now(), seq: 0, ...payload });
  // One statement: take the room's next number and write the event with it.
  await tx.$executeRaw`
    WITH s AS (
      INSERT INTO room_sequences AS q (room_id, seq) VALUES (${payload.roomId}, 1)
      ON CONFLICT (room_id) DO UPDATE SET seq = q.seq + 1
      RETURNING seq)
    INSERT INTO room_events (id, room_id, seq, type, payload)
    SELECT ${id}::uuid, ${payload.roomId}, s.seq, ${type},
           jsonb_set(${body}::jsonb, '{seq}', to_jsonb(s.seq))
    FROM s`;
}
