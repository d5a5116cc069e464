/**
 * Which media node hosts each room. Media nodes announce themselves with heartbeats (load,
 * capacity, whether they take new rooms); a room is assigned to the least-loaded live
 * node when a member first needs media, and the assignment is recorded on the room's row
 * so every gateway routes the room's media requests to the same node.
 *
 * A node that stops heartbeating for MEDIA_NODE_DEAD_AFTER_MS, restarts (new startedAt)
 * or leaves (graceful shutdown) loses its rooms: they are unassigned and their members get
 * eventMediaReset (reason `node`), after which their next media request lands on another
 * node.
 */
import { ProtocolError, type MediaNodeHeartbeat } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { Prisma } from '../generated/prisma/client.ts';
import type { Db } from '../db/client.ts';
import type { Notifier } from '../signaling/notifier.ts';

const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;
/** Load a new room is assumed to add until the node's next heartbeat tells the truth. */
const ROOM_LOAD_ESTIMATE = 4;

export interface PlacementOptions {
  nodeDeadAfterMs: number;
}

export class MediaPlacement {
  readonly #db: Db;
  readonly #opts: PlacementOptions;
  readonly #notifier: Notifier;
  readonly #log: Logger;

  constructor(db: Db, opts: PlacementOptions, notifier: Notifier, log: Logger) {
    this.#db = db;
    this.#opts = opts;
    this.#notifier = notifier;
    this.#log = log.child({ component: 'media-placement' });
  }

  /** Record a node's heartbeat; a restarted node's rooms lost their media. */
  async heartbeat(hb: MediaNodeHeartbeat): Promise<void> {
    const started = new Date(hb.startedAt);
    const rows = await this.#db.$queryRaw<{ restarted: boolean }[]>`
      WITH prev AS (SELECT started_at FROM media_nodes WHERE id = ${hb.nodeId})
      INSERT INTO media_nodes AS n (id, started_at, last_seen, load, capacity, accepting)
      VALUES (${hb.nodeId}, ${started}, ${NOW}, ${hb.load}, ${hb.capacity}, ${hb.accepting})
      ON CONFLICT (id) DO UPDATE
        SET started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen,
            load = EXCLUDED.load, capacity = EXCLUDED.capacity, accepting = EXCLUDED.accepting
      RETURNING (SELECT started_at FROM prev) IS DISTINCT FROM ${started}
                AND (SELECT started_at FROM prev) IS NOT NULL AS restarted`;
    if (rows[0]?.restarted === true) {
      const rooms = await this.#unassign(Prisma.sql`media_node_id = ${hb.nodeId}`);
      this.#log.warn({ nodeId: hb.nodeId, rooms }, 'media node restarted; its rooms start again');
    }
  }

  /**
   * The node hosting `socketId`'s room (assigning one if needed). The session must be
   * attached through `connectionId`.
   */
  async nodeFor(socketId: string, connectionId: string): Promise<string> {
    const alive = Prisma.sql`n.last_seen >= ${NOW} - make_interval(secs => ${this.#opts.nodeDeadAfterMs / 1000})`;
    return await this.#db.$transaction(async (tx) => {
      const sessions = await tx.$queryRaw<{ roomId: string }[]>`
        SELECT room_id AS "roomId" FROM sessions
        WHERE socket_id = ${socketId} AND connection_id = ${connectionId} AND state = 'ACTIVE'`;
      const roomId = sessions[0]?.roomId;
      if (roomId === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      // The room's row lock: concurrent first requests of a room agree on one node.
      const rooms = await tx.$queryRaw<{ nodeId: string | null; live: boolean }[]>`
        SELECT r.media_node_id AS "nodeId",
               EXISTS (SELECT 1 FROM media_nodes n WHERE n.id = r.media_node_id AND ${alive}) AS live
        FROM rooms r WHERE r.id = ${roomId} FOR UPDATE`;
      const room = rooms[0];
      if (room === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      if (room.nodeId !== null && room.live) return room.nodeId;
      const picked = await tx.$queryRaw<{ id: string }[]>`
        SELECT n.id FROM media_nodes n
        WHERE n.accepting AND ${alive}
        ORDER BY n.load::float8 / GREATEST(n.capacity, 1), n.id
        LIMIT 1`;
      const nodeId = picked[0]?.id;
      if (nodeId === undefined) {
        throw new ProtocolError('SERVICE_UNAVAILABLE', 'no media node is available');
      }
      await tx.$executeRaw`UPDATE rooms SET media_node_id = ${nodeId} WHERE id = ${roomId}`;
      await tx.$executeRaw`
        UPDATE media_nodes SET load = load + ${ROOM_LOAD_ESTIMATE} WHERE id = ${nodeId}`;
      this.#log.info({ roomId, nodeId, previous: room.nodeId }, 'room assigned to a media node');
      return nodeId;
    });
  }

  /** A node leaves (graceful shutdown): out of placement, its rooms start again elsewhere. */
  async nodeLeft(nodeId: string, startedAt: number): Promise<number> {
    await this.#db.$executeRaw`
      DELETE FROM media_nodes WHERE id = ${nodeId} AND started_at = ${new Date(startedAt)}`;
    const rooms = await this.#unassign(Prisma.sql`media_node_id = ${nodeId}`);
    this.#log.info({ nodeId, rooms }, 'media node left');
    return rooms;
  }

  /** Nodes silent for MEDIA_NODE_DEAD_AFTER_MS: out of placement, their rooms move. */
  async sweepDeadNodes(): Promise<number> {
    const dead = await this.#db.$queryRaw<{ id: string }[]>`
      DELETE FROM media_nodes
      WHERE last_seen < ${NOW} - make_interval(secs => ${this.#opts.nodeDeadAfterMs / 1000})
      RETURNING id`;
    // Rooms of a node that is gone (swept now, by another replica, or never seen here).
    const rooms = await this.#unassign(
      Prisma.sql`media_node_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM media_nodes n WHERE n.id = rooms.media_node_id)`,
    );
    if (dead.length > 0 || rooms > 0) {
      this.#log.warn({ nodes: dead.map((d) => d.id), rooms }, 'media nodes stopped; rooms move');
    }
    return rooms;
  }

  /** Unassign the rooms matching `where` and tell their members to start their media again. */
  async #unassign(where: Prisma.Sql): Promise<number> {
    const rooms = await this.#db.$queryRaw<{ id: string }[]>`
      UPDATE rooms SET media_node_id = NULL WHERE ${where} RETURNING id`;
    for (const { id } of rooms) {
      this.#notifier.broadcast({
        roomId: id,
        event: { a: 'eventMediaReset', d: { reason: 'node' } },
      });
    }
    return rooms.length;
  }
}
