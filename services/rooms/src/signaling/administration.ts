/**
 * The server API's side of the rooms service (RoomsAdmin in libs/protocol api.ts): rooms
 * made, changed, listed and deleted; members listed, changed and removed; data sent to them.
 * services/api authenticates and authorises each request before it gets here; this class
 * trusts that and checks only that what a request names exists.
 *
 * Removals go through Membership (the same transaction, events and announcements as any
 * leave). Changes to a member take the room's lock, then the session's (the lock order of
 * membership, join.ts), record `participant.updated`, and after the commit tell the member's
 * gateway (which applies the grants at once and tells its client) and the other members.
 */
import type { BusLike } from '@switchboard/bus';
import {
  MediaNodeAdmin,
  ProtocolError,
  SessionGrants,
  TokenGrants,
  roomGranted,
  signalingSubjects,
  socketRelayAck,
  validator,
  type Member,
  type Participant,
  type Room,
  type RoomsAdmin,
  type RpcReply,
  type RpcRequest,
  type SocketRelay,
  type Track,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { Prisma } from '../generated/prisma/client.ts';
import { NOW, type Db, type Tx } from '../db/client.ts';
import { recordEvent } from '../events/outbox.ts';
import type { Deadline } from '../db/sql.ts';
import { effectiveGrants } from './grants.ts';
import type { Membership } from './membership.ts';
import type { Notifier } from './notifier.ts';

export interface AdministrationOptions {
  defaultCapacity: number;
  /** ROOM_EMPTY_TIMEOUT_S: how long a room the API creates waits for members, by default. */
  defaultEmptyTimeoutS: number;
}

/** Relays of one sendData in flight at once. */
const SEND_CONCURRENCY = 64;

interface RoomRow {
  id: string;
  capacity: number | null;
  emptyTimeoutS: number | null;
  metadata: string | null;
  createdAt: Date;
  mediaNodeId: string | null;
  roomSize: bigint | number;
}

interface SessionRow {
  socketId: string;
  userId: string;
  name: string | null;
  metadata: string | null;
  platform: string;
  state: 'ACTIVE' | 'DISCONNECTED';
  joinedAt: Date;
  grants: unknown;
  grantOverride: unknown;
  hidden: boolean;
  gatewayId: string;
  connectionId: string;
}

interface TrackRow {
  trackId: string;
  socketId: string;
  kind: string;
  source: string;
  muted: boolean;
  publishedAt: Date;
}

const grantsOf = validator(SessionGrants);
const overrideOf = validator(TokenGrants);

const ROOM_COLUMNS = Prisma.sql`
  r.id, r.capacity, r.empty_timeout_s AS "emptyTimeoutS", r.metadata, r.created_at AS "createdAt",
  r.media_node_id AS "mediaNodeId",
  (SELECT count(*) FROM sessions s WHERE s.room_id = r.id) AS "roomSize"`;

const SESSION_COLUMNS = Prisma.sql`
  socket_id AS "socketId", user_id AS "userId", name, metadata, platform, state::text AS state,
  joined_at AS "joinedAt", grants, grant_override AS "grantOverride", hidden,
  gateway_id AS "gatewayId", connection_id AS "connectionId"`;

export class Administration {
  readonly #db: Db;
  readonly #bus: BusLike;
  readonly #membership: Membership;
  readonly #notify: Notifier;
  readonly #opts: AdministrationOptions;
  readonly #log: Logger;

  constructor(
    db: Db,
    bus: BusLike,
    membership: Membership,
    notify: Notifier,
    opts: AdministrationOptions,
    log: Logger,
  ) {
    this.#db = db;
    this.#bus = bus;
    this.#membership = membership;
    this.#notify = notify;
    this.#opts = opts;
    this.#log = log.child({ component: 'administration' });
  }

  // ---------------------------------------------------------------------------- rooms

  async createRoom(
    req: RpcRequest<typeof RoomsAdmin.createRoom>,
    d: Deadline,
  ): Promise<RpcReply<typeof RoomsAdmin.createRoom>> {
    const emptyTimeoutS =
      req.emptyTimeoutS === undefined ? this.#opts.defaultEmptyTimeoutS : req.emptyTimeoutS;
    const created = await this.#tx(d, async (tx) => {
      const rows = await tx.$queryRaw<{ id: string }[]>`
        INSERT INTO rooms (id, capacity, empty_timeout_s, metadata, empty_since)
        VALUES (${req.roomId}, ${req.capacity ?? null}, ${emptyTimeoutS}, ${req.metadata ?? null},
                ${NOW})
        ON CONFLICT (id) DO NOTHING
        RETURNING id`;
      if (rows.length === 0) return false;
      await recordEvent(tx, 'room.created', { roomId: req.roomId });
      return true;
    });
    return { created, room: await this.getRoom(req.roomId) };
  }

  async updateRoom(req: RpcRequest<typeof RoomsAdmin.updateRoom>, d: Deadline): Promise<Room> {
    await this.#tx(d, async (tx) => {
      // Each field: left out keeps the column, null resets it.
      const set = (column: string, value: unknown): Prisma.Sql =>
        value === undefined
          ? Prisma.sql`${Prisma.raw(column)} = ${Prisma.raw(column)}`
          : Prisma.sql`${Prisma.raw(column)} = ${value}`;
      const n = await tx.$executeRaw`
        UPDATE rooms SET ${set('capacity', req.capacity)},
          ${set('empty_timeout_s', req.emptyTimeoutS)}, ${set('metadata', req.metadata)}
        WHERE id = ${req.roomId}`;
      if (n === 0) throw new ProtocolError('ROOM_NOT_FOUND', req.roomId);
    });
    return await this.getRoom(req.roomId);
  }

  async getRoom(roomId: string): Promise<Room> {
    const rows = await this.#db.$queryRaw<RoomRow[]>`
      SELECT ${ROOM_COLUMNS} FROM rooms r WHERE r.id = ${roomId}`;
    const row = rows[0];
    if (row === undefined) throw new ProtocolError('ROOM_NOT_FOUND', roomId);
    return this.#room(row);
  }

  async listRooms(
    req: RpcRequest<typeof RoomsAdmin.listRooms>,
  ): Promise<RpcReply<typeof RoomsAdmin.listRooms>> {
    if (req.only.length === 0) return { rooms: [] };
    // The grants as SQL: exact ids, and prefixes (`p*`; `*` alone is the empty prefix).
    const exact = req.only.filter((g) => !g.endsWith('*'));
    const prefixes = req.only.filter((g) => g.endsWith('*')).map((g) => g.slice(0, -1));
    const rows = await this.#db.$queryRaw<RoomRow[]>`
      SELECT ${ROOM_COLUMNS} FROM rooms r
      WHERE ${req.after === undefined ? Prisma.sql`TRUE` : Prisma.sql`r.id > ${req.after}`}
        AND (r.id = ANY(${exact}::text[])
             OR EXISTS (SELECT 1 FROM unnest(${prefixes}::text[]) p WHERE starts_with(r.id, p)))
      ORDER BY r.id LIMIT ${req.limit + 1}`;
    const page = rows.slice(0, req.limit).map((r) => this.#room(r));
    // Belt and braces: the SQL and the protocol's matching must agree.
    const rooms = page.filter((r) => roomGranted(req.only, r.roomId));
    if (rooms.length !== page.length) this.#log.error('listRooms: SQL and grants disagree');
    const last = page.at(-1);
    return {
      rooms,
      ...(rows.length > req.limit && last !== undefined ? { next: last.roomId } : {}),
    };
  }

  async deleteRoom(roomId: string, d: Deadline): Promise<{ removed: number }> {
    return { removed: await this.#membership.removeByApi(roomId, null, 'deleted', undefined, d) };
  }

  // ---------------------------------------------------------------------- participants

  async listParticipants(
    req: RpcRequest<typeof RoomsAdmin.listParticipants>,
  ): Promise<RpcReply<typeof RoomsAdmin.listParticipants>> {
    const rows = await this.#db.$queryRaw<SessionRow[]>`
      SELECT ${SESSION_COLUMNS} FROM sessions
      WHERE room_id = ${req.roomId}
        AND ${req.after === undefined ? Prisma.sql`TRUE` : Prisma.sql`socket_id > ${req.after}`}
      ORDER BY socket_id LIMIT ${req.limit + 1}`;
    if (rows.length === 0) await this.getRoom(req.roomId); // ROOM_NOT_FOUND, or an empty room
    const page = rows.slice(0, req.limit);
    const participants = await this.#participants(page);
    const last = page.at(-1);
    return {
      participants,
      ...(rows.length > req.limit && last !== undefined ? { next: last.socketId } : {}),
    };
  }

  async getParticipant(roomId: string, socketId: string): Promise<Participant> {
    const rows = await this.#db.$queryRaw<SessionRow[]>`
      SELECT ${SESSION_COLUMNS} FROM sessions WHERE room_id = ${roomId} AND socket_id = ${socketId}`;
    const [p] = await this.#participants(rows);
    if (p === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
    return p;
  }

  async removeParticipant(
    req: RpcRequest<typeof RoomsAdmin.removeParticipant>,
    d: Deadline,
  ): Promise<void> {
    const n = await this.#membership.removeByApi(
      req.roomId,
      [req.socketId],
      'removed',
      req.reason,
      d,
    );
    if (n === 0) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
  }

  async updateParticipant(
    req: RpcRequest<typeof RoomsAdmin.updateParticipant>,
    d: Deadline,
  ): Promise<Participant> {
    const row = await this.#tx(d, async (tx) => {
      const room = await tx.$queryRaw<{ id: string }[]>`
        SELECT id FROM rooms WHERE id = ${req.roomId} FOR UPDATE`;
      if (room.length === 0) throw new ProtocolError('ROOM_NOT_FOUND', req.roomId);
      const rows = await tx.$queryRaw<SessionRow[]>`
        SELECT ${SESSION_COLUMNS} FROM sessions
        WHERE room_id = ${req.roomId} AND socket_id = ${req.socketId} FOR UPDATE`;
      const s = rows[0];
      if (s === undefined) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      const before = overrideOf.parse(s.grantOverride);
      const override: TokenGrants | null =
        req.grants === undefined
          ? before.ok
            ? before.value
            : null
          : { ...(before.ok ? before.value : {}), ...req.grants };
      if (override?.hidden !== undefined && override.hidden !== s.hidden) {
        // Appearing or vanishing mid-session would need the others told of a join or leave
        // that did not happen: a member's visibility is its token's, for the whole session.
        throw new ProtocolError('JSON_FIELD_INVALID', 'grants.hidden cannot change in a session');
      }
      const name = req.name === undefined ? s.name : req.name;
      const metadata = req.metadata === undefined ? s.metadata : req.metadata;
      await tx.$executeRaw`
        UPDATE sessions SET name = ${name}, metadata = ${metadata},
          grant_override = ${override === null ? null : JSON.stringify(override)}::jsonb
        WHERE socket_id = ${req.socketId}`;
      const updated: SessionRow = { ...s, name, metadata, grantOverride: override };
      await recordEvent(tx, 'participant.updated', {
        roomId: req.roomId,
        socketId: s.socketId,
        userId: s.userId,
        ...(name === null ? {} : { name }),
        ...(metadata === null ? {} : { metadata }),
        grants: this.#grants(updated),
      });
      // The others see a change of name or metadata: it takes the room's next number.
      const seq = s.hidden
        ? undefined
        : (
            await tx.$queryRaw<{ seq: number }[]>`
              SELECT sb_next_broadcast(${req.roomId})::float8 AS seq`
          )[0]?.seq;
      return { ...updated, seq };
    });
    const member: Member = {
      socketId: row.socketId,
      userId: row.userId,
      ...(row.name === null ? {} : { name: row.name }),
      ...(row.metadata === null ? {} : { metadata: row.metadata }),
    };
    const grants = this.#grants(row);
    if (row.state === 'ACTIVE') {
      this.#notify.control(row.gatewayId, {
        type: 'updated',
        socketId: row.socketId,
        connectionId: row.connectionId,
        participant: member,
        grants,
      });
    }
    if (!row.hidden) {
      this.#notify.broadcast({
        roomId: req.roomId,
        except: row.socketId,
        ...(row.seq === undefined ? {} : { seq: row.seq }),
        event: { a: 'eventParticipantUpdated', d: member },
      });
    }
    if (req.grants !== undefined) await this.#enforceGrants(req.roomId, row.socketId, grants, d);
    return await this.getParticipant(req.roomId, req.socketId);
  }

  // ---------------------------------------------------------------------------- tracks

  /**
   * Mute or unmute a member's track: the room's media node pauses it (its owner cannot
   * resume it) or lifts that, and tells the owner; then the track's record changes, with
   * track.muted. MEDIA_NOT_FOUND unless the member publishes that track in that room.
   */
  async muteTrack(req: RpcRequest<typeof RoomsAdmin.muteTrack>, d: Deadline): Promise<Track> {
    const rows = await this.#db.$queryRaw<(TrackRow & { nodeId: string | null })[]>`
      SELECT t.id AS "trackId", t.socket_id AS "socketId", t.kind, t.source, t.muted,
             t.published_at AS "publishedAt", r.media_node_id AS "nodeId"
      FROM tracks t JOIN rooms r ON r.id = t.room_id
      WHERE t.id = ${req.trackId} AND t.socket_id = ${req.socketId} AND t.room_id = ${req.roomId}`;
    const t = rows[0];
    if (t?.nodeId === undefined || t.nodeId === null) {
      throw new ProtocolError('MEDIA_NOT_FOUND', `track ${req.trackId}`);
    }
    await this.#bus.request(
      MediaNodeAdmin.muteProducer,
      { roomId: req.roomId, socketId: req.socketId, producerId: req.trackId, muted: req.muted },
      { to: t.nodeId, signal: d.signal, timeoutMs: Math.max(1, d.deadline - Date.now()) },
    );
    await this.#tx(d, async (tx) => {
      await tx.$queryRaw`SELECT id FROM rooms WHERE id = ${req.roomId} FOR UPDATE`;
      const changed = await tx.$queryRaw<{ userId: string }[]>`
        UPDATE tracks t SET muted = ${req.muted} FROM sessions s
        WHERE t.id = ${req.trackId} AND t.muted <> ${req.muted} AND s.socket_id = t.socket_id
        RETURNING s.user_id AS "userId"`;
      const row = changed[0];
      if (row === undefined) return;
      await recordEvent(tx, 'track.muted', {
        roomId: req.roomId,
        socketId: req.socketId,
        userId: row.userId,
        trackId: req.trackId,
        kind: t.kind as Track['kind'],
        source: t.source as Track['source'],
        muted: req.muted,
      });
    });
    return {
      trackId: t.trackId,
      kind: t.kind as Track['kind'],
      source: t.source as Track['source'],
      muted: req.muted,
      publishedAt: t.publishedAt.getTime(),
    };
  }

  /** New grants reach the member's media at once: what they no longer allow is closed. */
  async #enforceGrants(roomId: string, socketId: string, grants: SessionGrants, d: Deadline) {
    const rooms = await this.#db.$queryRaw<{ nodeId: string | null }[]>`
      SELECT media_node_id AS "nodeId" FROM rooms WHERE id = ${roomId}`;
    const nodeId = rooms[0]?.nodeId;
    if (nodeId === undefined || nodeId === null) return;
    try {
      await this.#bus.request(
        MediaNodeAdmin.enforceGrants,
        { roomId, socketId, grants },
        { to: nodeId, signal: d.signal, timeoutMs: Math.max(1, d.deadline - Date.now()) },
      );
    } catch (err) {
      // The grants are recorded and the gateway refuses what they disallow from now on;
      // what was already published stays until the member stops it or the node is back.
      this.#log.warn({ err, roomId, socketId, nodeId }, 'media node did not apply new grants');
    }
  }

  // ------------------------------------------------------------------------------ data

  async sendData(
    req: RpcRequest<typeof RoomsAdmin.sendData>,
    d: Deadline,
  ): Promise<RpcReply<typeof RoomsAdmin.sendData>> {
    const event = {
      a: 'eventData' as const,
      d: { payload: req.payload, ...(req.topic === undefined ? {} : { topic: req.topic }) },
    };
    if (req.socketIds === undefined) {
      const rows = await this.#db.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) AS n FROM sessions WHERE room_id = ${req.roomId} AND state = 'ACTIVE'`;
      const n = Number(rows[0]?.n ?? 0);
      if (n === 0) await this.getRoom(req.roomId); // ROOM_NOT_FOUND, or nobody to tell
      this.#notify.broadcast({ roomId: req.roomId, event });
      return { recipients: n };
    }
    // One relay per member, each confirmed by the gateway holding its socket.
    const targets = [...new Set(req.socketIds)];
    const relay: SocketRelay = { event };
    let recipients = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const socketId = targets[next++];
        if (socketId === undefined) break;
        try {
          await this.#bus.requestSubject(
            signalingSubjects.socket(this.#bus.prefix, socketId, req.roomId),
            relay,
            socketRelayAck,
            { signal: d.signal, timeoutMs: Math.max(1, d.deadline - Date.now()) },
          );
          recipients++;
        } catch (err) {
          if (d.signal.aborted) throw err;
          // Not connected now (or not in this room): it is not a recipient.
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(SEND_CONCURRENCY, targets.length) }, async () => {
        await worker();
      }),
    );
    return { recipients };
  }

  // --------------------------------------------------------------------------- helpers

  #room(r: RoomRow): Room {
    return {
      roomId: r.id,
      capacity: r.capacity ?? this.#opts.defaultCapacity,
      capacitySet: r.capacity !== null,
      emptyTimeoutS: r.emptyTimeoutS,
      metadata: r.metadata,
      createdAt: r.createdAt.getTime(),
      roomSize: Number(r.roomSize),
      mediaNodeId: r.mediaNodeId,
    };
  }

  #grants(s: Pick<SessionRow, 'grants' | 'grantOverride'>): SessionGrants {
    const token = grantsOf.parse(s.grants);
    // A row always has its token's grants (join writes them); a bad one grants nothing.
    const base: SessionGrants = token.ok
      ? token.value
      : {
          publish: false,
          sources: [],
          subscribe: false,
          data: false,
          hidden: false,
          role: 'member',
        };
    return effectiveGrants(base, s.grantOverride);
  }

  async #participants(rows: readonly SessionRow[]): Promise<Participant[]> {
    if (rows.length === 0) return [];
    const tracks = await this.#db.$queryRaw<TrackRow[]>`
      SELECT id AS "trackId", socket_id AS "socketId", kind, source, muted,
             published_at AS "publishedAt"
      FROM tracks WHERE socket_id = ANY(${rows.map((r) => r.socketId)}::text[])
      ORDER BY published_at, id`;
    return rows.map((s) => ({
      socketId: s.socketId,
      userId: s.userId,
      ...(s.name === null ? {} : { name: s.name }),
      ...(s.metadata === null ? {} : { metadata: s.metadata }),
      platform: s.platform,
      state: s.state === 'ACTIVE' ? 'active' : 'disconnected',
      joinedAt: s.joinedAt.getTime(),
      grants: this.#grants(s),
      tracks: tracks
        .filter((t) => t.socketId === s.socketId)
        .map((t): Track => ({
          trackId: t.trackId,
          kind: t.kind as Track['kind'],
          source: t.source as Track['source'],
          muted: t.muted,
          publishedAt: t.publishedAt.getTime(),
        })),
    }));
  }

  async #tx<T>(d: Deadline, work: (tx: Tx) => Promise<T>): Promise<T> {
    return await this.#membership.transaction(d, work);
  }
}
