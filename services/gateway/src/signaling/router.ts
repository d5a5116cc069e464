/**
 * The gateway's side of the bus for signaling: which sockets it holds, and how events
 * reach them.
 *
 * - Room broadcasts: one subscription per room this gateway has members in (reference
 *   counted), fanned out to the local members. Broadcasts of a change of the room's state
 *   carry the room's sequence number (RoomSeq): one that arrives after a gap is held for a
 *   moment (broadcasts of two rooms replicas may cross), then, if the gap stays, the room is
 *   resynced — its local members get eventRoomState, the room as it is now — as every room
 *   is after this gateway was cut off from NATS. In order, they go to the batcher (encoded
 *   once; a big room's batched, see batcher.ts): anything else for a member of a room goes
 *   through `#direct`, which writes the room's queued broadcasts first. A joiner becomes a
 *   member once the room here is delivered up to its reply's number: broadcasts its joinR
 *   already reflects are not written to it (each member hears of another exactly once).
 * - Relays to one socket: one subscription per socket held, `<p>.sig.sock.<socketId>.*`;
 *   the last token is the sender's room, and a relay from another room is refused, so a
 *   socketId alone never reaches across rooms. Its reply names the gateway that holds the
 *   socket. Relays to sockets of other gateways, and the batches they send here, are
 *   relays.ts's (`Relays`); a relay to a socket held here is written at once.
 * - Control: `<p>.sig.gw.<gatewayId>.ctl`, for detaching a socket another gateway took
 *   over or whose session ended.
 *
 * It holds no room state beyond the sockets attached to this process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Bus, type BusSubscription, type Incoming } from '@switchboard/bus';
import {
  ProtocolError,
  Rooms,
  gatewayControl,
  roomBroadcast,
  roomToken,
  signalingSubjects,
  socketMessage,
  type DetachReason,
  type EventFrameMessage,
  type Member,
  type RoomBroadcast,
  type RoomState,
  type SessionGrants,
  type ServerRequest,
  type SocketMessage,
  type SocketRelay,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { Batcher, type BatcherOptions } from './batcher.ts';
import type { EncodedFrame } from './frames.ts';
import type { SignalingMetrics } from './metrics.ts';
import { Relays } from './relays.ts';
import { afterWrites } from './writes.ts';

/** What the router needs of a client connection. */
export interface Attachable {
  readonly connectionId: string;
  /** Write an event to the socket. */
  deliver(event: EventFrameMessage): void;
  /** Write a frame encoded once for many sockets. */
  deliverEncoded(frame: EncodedFrame): void;
  /** The client reads eventBatch (it said so in its join or reconnect). */
  readonly batchEvents: boolean;
  /** Close the socket because the session moved or ended; no disconnect follows. */
  detach(reason: DetachReason, message?: string): void;
  /** The server API changed the session's member or grants. */
  updated(participant: Member, grants: SessionGrants): void;
  /**
   * Send the client a server request and wait for its reply (validated against the method's
   * schema) until `deadline` (epoch ms); rejects with a ProtocolError.
   */
  call(method: ServerRequest, data: unknown, deadline: number): Promise<unknown>;
}

interface Attachment {
  conn: Attachable;
  roomId: string;
  roomToken: string;
  sub: BusSubscription;
}

interface RoomFanout {
  readonly roomId: string;
  sub: BusSubscription;
  readonly members: Set<string>;
  /**
   * Sockets attached here that are not members yet, with the broadcasts that came meanwhile:
   * their join (or resume) is not answered yet, or it was at a broadcast number (`floor`) the
   * room here has not delivered up to (the reply overtook broadcasts before it). A joinR
   * reflects every number up to its own: only later broadcasts are written to its socket.
   */
  readonly joining: Map<string, Joining>;
  /** The last broadcast number delivered (undefined until the first member's reply told it). */
  seq: number | undefined;
  /** The highest number seen before `seq` was known. */
  seenBeforeSeq: number;
  /** Broadcasts after a gap, waiting for the missing ones or a resync, by number. */
  held: Map<number, RoomBroadcast>;
  gapTimer: NodeJS.Timeout | undefined;
  syncing: boolean;
  /** Told to go again when a sync was asked for during one. */
  again: boolean;
}

interface Joining {
  /** Broadcasts fanned out since it attached, in order. */
  readonly meanwhile: RoomBroadcast[];
  /** Once answered: its connection and its reply's number (what its reply reflects). */
  answered?: { conn: Attachable; floor: number | undefined };
}

/** How long a gap in a room's broadcast numbers may last before the room is resynced. */
const GAP_WAIT_MS = 300;
/** Broadcasts held during a gap at most; beyond, the resync covers them all. */
const MAX_HELD = 512;
const SYNC_BACKOFF_MS = [500, 1000, 2000, 5000];
/** A pending attachment: commit once the rooms service agreed, or roll back. */
export interface PendingAttach {
  /**
   * Make this connection the socket's; returns the connection it replaced, if any. `roomSeq`
   * is the room's broadcast number the rooms service's reply included.
   */
  commit(roomSeq?: number): Attachable | undefined;
  rollback(): void;
}

export class Router {
  readonly #bus: Bus;
  readonly #gatewayId: string;
  readonly #log: Logger;
  readonly #sockets = new Map<string, Attachment>();
  readonly #rooms = new Map<string, RoomFanout>();
  #control: BusSubscription | undefined;
  readonly #stopped = new AbortController();
  /** Relays to sockets of other gateways, and theirs to sockets here. */
  readonly #relays: Relays;
  readonly #batcher: Batcher;

  constructor(
    bus: Bus,
    gatewayId: string,
    log: Logger,
    batching: Pick<BatcherOptions, 'minMembers' | 'windowMs'> & {
      metrics: BatcherOptions['metrics'] &
        Pick<SignalingMetrics, 'relayBatches' | 'relayBatchItems'>;
    },
  ) {
    this.#bus = bus;
    this.#gatewayId = gatewayId;
    this.#log = log.child({ component: 'router' });
    this.#relays = new Relays({
      bus,
      gatewayId,
      log: this.#log,
      metrics: batching.metrics,
      deliver: (socketId, roomId, event) => {
        const att = this.#sockets.get(socketId);
        if (att?.roomId !== roomId) return false;
        this.#direct(att).deliver(event);
        return true;
      },
    });
    this.#batcher = new Batcher({
      ...batching,
      log: this.#log,
      connection: (socketId) => this.#sockets.get(socketId)?.conn,
    });
  }

  /** Sessions attached here now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Rooms with members here now. */
  get rooms(): number {
    return this.#rooms.size;
  }

  start(): void {
    this.#control = this.#bus.subscribe(
      signalingSubjects.gatewayControl(this.#bus.prefix, this.#gatewayId),
      gatewayControl,
      (msg) => {
        if (msg.type === 'detach') {
          this.detach(msg.socketId, msg.connectionId, msg.reason, msg.message);
        } else {
          const att = this.#sockets.get(msg.socketId);
          if (att?.conn.connectionId === msg.connectionId) {
            this.#direct(att).updated(msg.participant, msg.grants);
          }
        }
      },
    );
    this.#relays.start();
  }

  stop(): void {
    this.#stopped.abort();
    this.#control?.unsubscribe();
    this.#relays.stop();
    this.#batcher.stop();
  }

  /**
   * Subscribe for `socketId` in `roomId` before the rooms service is asked, so nothing
   * sent right after it answers is missed. Events that arrive before `commit()` are
   * delivered to `conn`, which holds them until its reply is written.
   */
  attach(socketId: string, roomId: string, conn: Attachable): PendingAttach {
    const previous = this.#sockets.get(socketId);
    const token = roomToken(roomId);
    let sub = previous?.roomId === roomId ? previous.sub : undefined;
    const ownSub = sub === undefined;
    sub ??= this.#subscribeSocket(socketId);
    const att: Attachment = { conn, roomId, roomToken: token, sub };
    this.#sockets.set(socketId, att);
    this.#join(roomId, socketId);
    let settled = false;
    return {
      commit: (roomSeq?: number) => {
        if (settled) throw new Error('attachment already settled');
        settled = true;
        const room = this.#rooms.get(roomId);
        if (room !== undefined && room.seq === undefined && roomSeq !== undefined) {
          // Broadcasts that came meanwhile were delivered; the later of the two is where
          // the room's sequence goes on from.
          room.seq = Math.max(roomSeq, room.seenBeforeSeq);
        }
        const joining = room?.joining.get(socketId);
        if (room !== undefined && joining !== undefined) {
          joining.answered = { conn, floor: roomSeq };
          this.#admit(room);
          if (room.joining.get(socketId) === joining) this.#awaitGap(room);
        }
        if (previous !== undefined && previous.sub !== sub) {
          previous.sub.unsubscribe();
          this.#leave(previous.roomId, socketId);
        }
        return previous?.conn;
      },
      rollback: () => {
        if (settled) return;
        settled = true;
        if (previous === undefined) {
          this.#release(socketId, conn);
          return;
        }
        this.#sockets.set(socketId, previous);
        if (ownSub) {
          sub.unsubscribe();
          this.#leave(roomId, socketId);
        }
      },
    };
  }

  /** Every socket attached here, with its connection. */
  attachments(): { socketId: string; connectionId: string }[] {
    return [...this.#sockets].map(([socketId, att]) => ({
      socketId,
      connectionId: att.conn.connectionId,
    }));
  }

  /** Whether `socketId` is attached here through `connectionId`. */
  holds(socketId: string, connectionId: string): boolean {
    return this.#sockets.get(socketId)?.conn.connectionId === connectionId;
  }

  /** Close `socketId`'s socket if it is still attached through `connectionId`. */
  detach(socketId: string, connectionId: string, reason: DetachReason, message?: string): void {
    const att = this.#sockets.get(socketId);
    if (att?.conn.connectionId !== connectionId) return;
    this.#log.info({ socketId, reason }, 'detaching socket');
    this.#release(socketId, att.conn);
    att.conn.detach(reason, message);
  }

  /** Forget `socketId` if `conn` still holds it (the connection closed). */
  release(socketId: string, conn: Attachable): void {
    this.#release(socketId, conn);
  }

  #release(socketId: string, conn: Attachable): void {
    const att = this.#sockets.get(socketId);
    if (att?.conn !== conn) return;
    this.#sockets.delete(socketId);
    att.sub.unsubscribe();
    this.#leave(att.roomId, socketId);
  }

  /**
   * Relay an event to `to`, which must be a member of `roomId` attached to some gateway.
   * Resolves once the gateway holding it wrote the event to its socket;
   * SOCKET_ID_DOES_NOT_EXIST when no gateway holds it in that room. A socket attached here
   * gets it directly, without the round trip through NATS; one of a known gateway goes in
   * this turn's batch to it.
   */
  async relay(
    to: string,
    roomId: string,
    event: SocketRelay['event'],
    opts: { signal: AbortSignal; traceparent?: string },
  ): Promise<void> {
    const local = this.#sockets.get(to);
    if (local !== undefined) {
      // A socketId belongs to one session, in one room: held here, it is nowhere else.
      if (local.roomId !== roomId) throw new ProtocolError('SOCKET_ID_DOES_NOT_EXIST');
      this.#direct(local).deliver(event);
      return;
    }
    await this.#relays.relay(to, roomId, event, opts);
  }

  /** Publish a broadcast to a room (fanned out by every gateway with members there). */
  broadcast(roomId: string, event: EventFrameMessage, except?: string): void {
    this.#bus.publish(signalingSubjects.room(this.#bus.prefix, roomId), {
      roomId,
      event,
      ...(except === undefined ? {} : { except }),
    });
  }

  /**
   * A socket's two subjects: event relays (`sig.sock`) and server-to-client calls (`sig.call`,
   * which the bus lets operators and services publish to, not gateways).
   */
  #subscribeSocket(socketId: string): BusSubscription {
    const subs = (['relay', 'call'] as const).map((kind) =>
      this.#bus.subscribe(
        kind === 'relay'
          ? signalingSubjects.socketAny(this.#bus.prefix, socketId)
          : signalingSubjects.callAny(this.#bus.prefix, socketId),
        socketMessage,
        async (msg, incoming) => {
          await this.#onRelay(socketId, kind, msg, incoming);
        },
      ),
    );
    return {
      subject: signalingSubjects.socketAny(this.#bus.prefix, socketId),
      unsubscribe: () => {
        for (const s of subs) s.unsubscribe();
      },
    };
  }

  async #onRelay(
    socketId: string,
    kind: 'relay' | 'call',
    msg: SocketMessage,
    incoming: Incoming,
  ): Promise<void> {
    const att = this.#sockets.get(socketId);
    const senderRoom = incoming.subject.slice(incoming.subject.lastIndexOf('.') + 1);
    if (att?.roomToken !== senderRoom) {
      incoming.respond({ ok: false, error: new ProtocolError('SOCKET_ID_DOES_NOT_EXIST') });
      return;
    }
    if ('call' in msg !== (kind === 'call')) {
      // A call only on the calls' subject, a relay only on the relays'.
      this.#log.warn({ subject: incoming.subject }, 'socket message on the wrong subject; dropped');
      incoming.respond({ ok: false, error: new ProtocolError('JSON_FIELD_INVALID') });
      return;
    }
    if ('call' in msg) {
      // A server-to-client request: answered when the client does (or its deadline passes).
      // A rejection is a ProtocolError, which the bus answers with its code.
      const data = await this.#direct(att).call(msg.call.method, msg.call.data, incoming.deadline);
      incoming.respond({ ok: true, data });
      return;
    }
    this.#direct(att).deliver(msg.event);
    afterWrites(() => {
      incoming.respond({ ok: true, data: { gatewayId: this.#gatewayId } });
    });
  }

  #join(roomId: string, socketId: string): void {
    let room = this.#rooms.get(roomId);
    if (room === undefined) {
      const sub = this.#bus.subscribe(
        signalingSubjects.room(this.#bus.prefix, roomId),
        roomBroadcast,
        (msg) => {
          if (msg.roomId !== roomId) {
            this.#log.warn({ roomId, got: msg.roomId }, 'broadcast for another room; dropped');
            return;
          }
          const r = this.#rooms.get(roomId);
          if (r !== undefined) this.#onBroadcast(roomId, r, msg);
        },
      );
      room = {
        roomId,
        sub,
        members: new Set<string>(),
        joining: new Map(),
        seq: undefined,
        seenBeforeSeq: 0,
        held: new Map(),
        gapTimer: undefined,
        syncing: false,
        again: false,
      };
      this.#rooms.set(roomId, room);
    }
    if (room.members.has(socketId) || room.joining.has(socketId)) return;
    room.joining.set(socketId, { meanwhile: [] });
  }

  /**
   * Answered joiners become members once the room here has delivered up to their reply's
   * number, and get what came meanwhile that their reply does not already reflect (held by
   * their connection until that reply is written). Without this a joiner heard again of
   * members its joinR listed: broadcasts sent before its reply but read after it.
   */
  #admit(room: RoomFanout): void {
    for (const [socketId, j] of room.joining) {
      const a = j.answered;
      if (a === undefined) continue;
      if (a.floor !== undefined && (room.seq === undefined || room.seq < a.floor)) continue;
      room.joining.delete(socketId);
      this.#batcher.memberAdded(room.roomId, socketId);
      room.members.add(socketId);
      for (const msg of j.meanwhile) {
        if (msg.except === socketId) continue;
        if (msg.seq !== undefined && a.floor !== undefined && msg.seq <= a.floor) continue;
        a.conn.deliver(msg.event);
        for (const e of msg.more ?? []) a.conn.deliver(e);
      }
    }
  }

  /** A broadcast of `room`, in order: to its members (batched or not), kept for joiners. */
  #fanOut(room: RoomFanout, msg: RoomBroadcast): void {
    this.#batcher.fanOut(room, msg);
    if (room.joining.size === 0) return;
    for (const j of room.joining.values()) j.meanwhile.push(msg);
    if (msg.seq !== undefined) this.#admit(room);
  }

  /** A room broadcast: in its number's order, after a gap only once resolved (see above). */
  #onBroadcast(roomId: string, room: RoomFanout, msg: RoomBroadcast): void {
    const seq = msg.seq;
    if (seq === undefined) {
      this.#fanOut(room, msg);
      return;
    }
    if (room.seq === undefined) {
      room.seenBeforeSeq = Math.max(room.seenBeforeSeq, seq);
      this.#fanOut(room, msg);
      return;
    }
    if (seq <= room.seq) return; // already delivered, or in a resync's state
    if (seq === room.seq + 1 && !room.syncing) {
      room.seq = seq;
      this.#fanOut(room, msg);
      this.#drainHeld(room);
      return;
    }
    if (room.held.size >= MAX_HELD) room.held.clear();
    room.held.set(seq, msg);
    this.#awaitGap(room);
  }

  /**
   * Numbers are missing (broadcasts held after a gap, or a joiner answered at a number not
   * delivered here yet): if they do not come within GAP_WAIT_MS, the room is resynced.
   */
  #awaitGap(room: RoomFanout): void {
    if (room.syncing || room.gapTimer !== undefined) return;
    room.gapTimer = setTimeout(() => {
      room.gapTimer = undefined;
      if (this.#rooms.get(room.roomId) !== room) return;
      if (room.held.size > 0 || answeredWaiting(room)) this.#sync(room.roomId, room);
    }, GAP_WAIT_MS);
  }

  /** Deliver held broadcasts that follow on; past a resync, a gap left is accepted. */
  #drainHeld(room: RoomFanout, afterSync = false): void {
    for (;;) {
      if (room.seq === undefined || room.held.size === 0) break;
      let next = room.held.get(room.seq + 1);
      if (next === undefined) {
        for (const k of room.held.keys()) if (k <= room.seq) room.held.delete(k);
        if (!afterSync || room.held.size === 0) break;
        // Numbers missing after a fresh state were lost after it was read: go on from the
        // next one held rather than resync again (the next gap does).
        const lowest = Math.min(...room.held.keys());
        next = room.held.get(lowest);
        room.seq = lowest - 1;
      }
      if (next === undefined) break;
      room.held.delete(room.seq + 1);
      room.seq += 1;
      this.#fanOut(room, next);
    }
    if (room.held.size === 0 && !answeredWaiting(room) && room.gapTimer !== undefined) {
      clearTimeout(room.gapTimer);
      room.gapTimer = undefined;
    }
  }

  /**
   * `att`'s connection, for anything but a broadcast of its room: the room's queued
   * broadcasts are written first, so that nothing from or about a peer (a relay, a call, the
   * room's state…) overtakes that peer's eventJoin.
   */
  #direct(att: Attachment): Attachable {
    this.#batcher.flush(att.roomId);
    return att.conn;
  }

  /**
   * Every room with members here is resynced: after this gateway was cut off from NATS, the
   * broadcasts of that time are lost.
   */
  resyncRooms(): void {
    for (const [roomId, room] of this.#rooms) this.#sync(roomId, room);
  }

  /** Tell one socket the room as it is now (after its client resumed: it may have missed some). */
  async sendRoomState(socketId: string, signal: AbortSignal): Promise<void> {
    const att = this.#sockets.get(socketId);
    if (att === undefined) return;
    const state = await this.#bus.request(Rooms.roomState, { roomId: att.roomId }, { signal });
    const now = this.#sockets.get(socketId);
    // The state is newer than anything queued: it goes after it.
    if (now?.conn === att.conn) this.#direct(now).deliver(roomStateEvent(state, socketId));
  }

  /** Read the room's state and give it to its members here; retried while it has some. */
  #sync(roomId: string, room: RoomFanout): void {
    if (room.syncing) {
      room.again = true;
      return;
    }
    room.syncing = true;
    if (room.gapTimer !== undefined) {
      clearTimeout(room.gapTimer);
      room.gapTimer = undefined;
    }
    void (async () => {
      const signal = this.#stopped.signal;
      for (let attempt = 0; this.#rooms.get(roomId) === room && !signal.aborted; attempt++) {
        room.again = false;
        try {
          const state = await this.#bus.request(Rooms.roomState, { roomId }, { signal });
          if (this.#rooms.get(roomId) !== room) return;
          room.seq = Math.max(room.seq ?? 0, state.roomSeq);
          // A joiner not yet a member misses the broadcasts the state stands for (held ones up
          // to it are dropped): it gets the state too, when its reply turns out older (a
          // meanwhile entry at or under its reply's number is skipped at admission).
          for (const [socketId, j] of room.joining) {
            j.meanwhile.push({
              roomId,
              seq: Math.max(1, state.roomSeq),
              event: roomStateEvent(state, socketId),
            });
          }
          this.#admit(room);
          // What was queued before the state goes first; the state then replaces it.
          this.#batcher.flush(roomId);
          for (const member of room.members) {
            this.#sockets.get(member)?.conn.deliver(roomStateEvent(state, member));
          }
          this.#log.info({ roomId, roomSeq: state.roomSeq }, 'room resynced');
          if (!askedAgain(room)) break;
          attempt = -1;
        } catch (err) {
          if (isAborted(signal)) return;
          const wait = SYNC_BACKOFF_MS[Math.min(attempt, SYNC_BACKOFF_MS.length - 1)] ?? 5000;
          this.#log.warn({ err, roomId }, `room resync failed; again in ${wait} ms`);
          await sleep(wait, undefined, { signal }).catch(() => undefined);
        }
      }
    })()
      .catch((err: unknown) => {
        this.#log.error({ err, roomId }, 'room resync failed');
      })
      .finally(() => {
        room.syncing = false;
        this.#drainHeld(room, true);
      });
  }

  #leave(roomId: string, socketId: string): void {
    const room = this.#rooms.get(roomId);
    if (room === undefined) return;
    // Another connection may hold the same socketId in this room (a reconnect in progress).
    const att = this.#sockets.get(socketId);
    if (att?.roomId === roomId) return;
    room.members.delete(socketId);
    room.joining.delete(socketId);
    if (room.members.size === 0 && room.joining.size === 0) {
      room.sub.unsubscribe();
      if (room.gapTimer !== undefined) clearTimeout(room.gapTimer);
      this.#batcher.drop(roomId);
      this.#rooms.delete(roomId);
    }
  }
}

/** Whether a joiner of `room` was answered at a number not delivered here yet. */
function answeredWaiting(room: RoomFanout): boolean {
  for (const j of room.joining.values()) if (j.answered !== undefined) return true;
  return false;
}

/** Functions, so narrowing across awaits cannot fool the checker. */
function askedAgain(room: RoomFanout): boolean {
  return room.again;
}
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** eventRoomState for one member: the others in the room. */
function roomStateEvent(state: RoomState, socketId: string): EventFrameMessage {
  return {
    a: 'eventRoomState',
    d: {
      roomId: state.roomId,
      roomSize: state.roomSize,
      sessions: state.sessions.filter((m) => m.socketId !== socketId),
      complete: state.complete,
      userMediaConfiguration: state.userMediaConfiguration,
    },
  };
}
