/**
 * A room's members and their peers: a session's peer is placed on a route by its first
 * media request (concurrent first requests share the placing; a session that left or a room
 * that closed meanwhile gets none), and closed when the session leaves the room or is no
 * longer among the members the rooms service lists.
 */
import { EventEmitter } from 'node:events';
import { ProtocolError } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { MediaPeer } from './peer.ts';
import type { Placement } from './placement.ts';
import type { WorkerPool } from './workers.ts';

export interface MembersOptions {
  /** Where a new peer goes. */
  placement: Pick<Placement, 'pick'>;
  /** What a peer's transports and consumers count against. */
  pool: Pick<WorkerPool, 'track'>;
  log: Logger;
}

export interface MembersEvents {
  /** A session's peer was placed (before any request gets it). */
  placed: [peer: MediaPeer];
  /** The last peer left (or the last one being placed failed): the room is empty. */
  empty: [];
}

export class Members extends EventEmitter<MembersEvents> {
  readonly #o: MembersOptions;
  /** Peers being placed or placed, by socketId. */
  readonly #peers = new Map<string, Promise<MediaPeer>>();
  readonly #placed = new Map<string, MediaPeer>();
  #closed = false;

  constructor(options: MembersOptions) {
    super();
    this.#o = options;
  }

  /** Peers placed so far (including ones being placed). */
  get size(): number {
    return this.#peers.size;
  }

  /** Peers whose placement finished. */
  placed(): MediaPeer[] {
    return [...this.#placed.values()];
  }

  /** The placed peer of a session, if it has one. */
  get(socketId: string): MediaPeer | undefined {
    return this.#placed.get(socketId);
  }

  /** The session's peer; with `create`, placing it if it has none. */
  async peer(
    req: { socketId: string; userId: string },
    signal: AbortSignal,
    create: boolean,
  ): Promise<MediaPeer> {
    if (this.#closed) throw new ProtocolError('MEDIA_RESET', 'the room is being re-created');
    let pending = this.#peers.get(req.socketId);
    if (pending === undefined) {
      if (!create) throw new ProtocolError('MEDIA_NOT_FOUND', 'no transport yet');
      const placing: Promise<MediaPeer> = this.#o.placement.pick(signal).then((route) => {
        const peer = new MediaPeer(req.socketId, req.userId, route, this.#o.pool);
        if (this.#closed || this.#peers.get(req.socketId) !== placing) {
          // The session left (or the room closed) while it was being placed.
          throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
        }
        this.#placed.set(req.socketId, peer);
        this.emit('placed', peer);
        this.#o.log.info({ socketId: req.socketId, slot: route.slot.index }, 'peer placed');
        return peer;
      });
      pending = placing;
      this.#peers.set(req.socketId, placing);
      placing.catch(() => {
        if (this.#peers.get(req.socketId) !== placing) return;
        this.#peers.delete(req.socketId);
        if (this.#peers.size === 0) this.emit('empty');
      });
    }
    const peer = await pending;
    if (peer.userId !== req.userId) throw new ProtocolError('MEDIA_NOT_FOUND', 'another user');
    if (peer.closed) throw new ProtocolError('MEDIA_NOT_FOUND', 'the session left');
    return peer;
  }

  /** The session left the room (or its window expired): close its media. */
  leave(socketId: string): void {
    if (!this.#peers.delete(socketId)) return;
    const peer = this.#placed.get(socketId);
    this.#placed.delete(socketId);
    if (peer !== undefined) {
      peer.close();
      this.#o.log.info({ socketId }, 'peer closed');
    }
    if (this.#peers.size === 0) this.emit('empty');
  }

  /**
   * The room's members as the rooms service listed them (asked at `asked`, epoch ms): peers
   * placed before that and not among them are closed.
   */
  reconcile(members: ReadonlySet<string>, asked: number): void {
    for (const [socketId, peer] of [...this.#placed]) {
      if (!members.has(socketId) && peer.placedAt < asked) {
        this.#o.log.info({ socketId }, 'session no longer in the room; closing its media');
        this.leave(socketId);
      }
    }
  }

  /** Close every peer; the sessions that had one (placed or being placed). */
  close(): string[] {
    this.#closed = true;
    const socketIds = [...this.#peers.keys()];
    this.#peers.clear();
    for (const peer of this.#placed.values()) peer.close();
    this.#placed.clear();
    return socketIds;
  }
}
