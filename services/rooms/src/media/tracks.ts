/**
 * The rooms' tracks, as their media nodes report them (Rooms.tracks): a producer that began
 * is kept with its session (and `track.published` recorded), one that ended is forgotten
 * (`track.unpublished`). Each change is applied once: a replayed batch finds the track
 * already there, or already gone. A track whose session has left is not kept: the leave
 * already ended it (sb_remove, leave.ts, records its track.unpublished before the room.leave).
 */
import { type MediaKind, type ProducerSource, type TrackChange } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { recordEvent } from '../events/outbox.ts';
import type { Deadline } from '../db/sql.ts';
import type { Tx } from '../db/client.ts';
import type { Membership } from '../signaling/membership.ts';

export class Tracks {
  readonly #membership: Membership;
  readonly #log: Logger;

  constructor(membership: Membership, log: Logger) {
    this.#membership = membership;
    this.#log = log.child({ component: 'tracks' });
  }

  /** Apply a node's changes in order; each in its own transaction under its room's lock. */
  async apply(nodeId: string, changes: readonly TrackChange[], d: Deadline): Promise<void> {
    let written = 0;
    for (const change of changes) {
      if (await this.#membership.transaction(d, async (tx) => await this.#apply(tx, change))) {
        written++;
      }
    }
    this.#log.debug({ nodeId, changes: changes.length, written }, 'track changes applied');
  }

  async #apply(tx: Tx, c: TrackChange): Promise<boolean> {
    // The room's lock orders this change's event among the room's others.
    const room = await tx.$queryRaw<{ id: string }[]>`
      SELECT id FROM rooms WHERE id = ${c.roomId} FOR UPDATE`;
    if (room.length === 0) return false;
    if (c.type === 'published') {
      const rows = await tx.$queryRaw<{ userId: string }[]>`
        INSERT INTO tracks (id, socket_id, room_id, kind, source)
        SELECT ${c.trackId}, s.socket_id, s.room_id, ${c.kind}, ${c.source}
        FROM sessions s WHERE s.socket_id = ${c.socketId} AND s.room_id = ${c.roomId}
        ON CONFLICT (id) DO NOTHING
        RETURNING (SELECT user_id FROM sessions WHERE socket_id = ${c.socketId}) AS "userId"`;
      const row = rows[0];
      if (row === undefined) return false;
      await recordEvent(tx, 'track.published', {
        roomId: c.roomId,
        socketId: c.socketId,
        userId: row.userId,
        trackId: c.trackId,
        kind: c.kind,
        source: c.source,
      });
      return true;
    }
    const rows = await tx.$queryRaw<{ kind: string; source: string; userId: string }[]>`
      DELETE FROM tracks t USING sessions s
      WHERE t.id = ${c.trackId} AND t.socket_id = ${c.socketId} AND t.room_id = ${c.roomId}
        AND s.socket_id = t.socket_id
      RETURNING t.kind, t.source, s.user_id AS "userId"`;
    const row = rows[0];
    if (row === undefined) return false;
    await recordEvent(tx, 'track.unpublished', {
      roomId: c.roomId,
      socketId: c.socketId,
      userId: row.userId,
      trackId: c.trackId,
      kind: row.kind as MediaKind,
      source: row.source as ProducerSource,
    });
    return true;
  }
}
