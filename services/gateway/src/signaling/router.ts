/**
 * The gateway's side of the bus for signaling: which sockets it holds, and how events
 * reach them.
 *
 * - Room broadcasts: one subscription per room this gateway has members in (reference
 *   counted), fanned out to the local members.
 * - Relays to one socket: one subscription per socket held, `<p>.sig.sock.<socketId>.*`;
 *   the last token is the sender's room, and a relay from another room is refused, so a
 *   socketId alone never reaches across rooms.
 * - Control: `<p>.sig.gw.<gatewayId>.ctl`, for detaching a socket another gateway took
 *   over or whose session ended.
 *
 * It holds no room state beyond the sockets attached to this process.
 */
import type { Bus, BusSubscription, Incoming } from '@switchboard/bus';
import {
  ProtocolError,
  gatewayControl,
  roomBroadcast,
  roomToken,
  signalingSubjects,
  socketMessage,
  socketRelayAck,
  type DetachReason,
  type EventFrameMessage,
  type Member,
  type SessionGrants,
  type ServerRequest,
  type SocketMessage,
  type SocketRelay,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

/** What the router needs of a client connection. */
export interface Attachable {
  readonly connectionId: string;
  /** Write an event to the socket. */
  deliver(event: EventFrameMessage): void;
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
  sub: BusSubscription;
  members: Set<string>;
}

/** A pending attachment: commit once the rooms service agreed, or roll back. */
export interface PendingAttach {
  /** Make this connection the socket's; returns the connection it replaced, if any. */
  commit(): Attachable | undefined;
  rollback(): void;
}

export class Router {
  readonly #bus: Bus;
  readonly #gatewayId: string;
  readonly #log: Logger;
  readonly #sockets = new Map<string, Attachment>();
  readonly #rooms = new Map<string, RoomFanout>();
  #control: BusSubscription | undefined;

  constructor(bus: Bus, gatewayId: string, log: Logger) {
    this.#bus = bus;
    this.#gatewayId = gatewayId;
    this.#log = log.child({ component: 'router' });
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
            att.conn.updated(msg.participant, msg.grants);
          }
        }
      },
    );
  }

  stop(): void {
    this.#control?.unsubscribe();
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
      commit: () => {
        if (settled) throw new Error('attachment already settled');
        settled = true;
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
        if (ownSub) {
          sub.unsubscribe();
          this.#leave(roomId, socketId);
        }
        this.#sockets.set(socketId, previous);
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
   * SOCKET_ID_DOES_NOT_EXIST when no gateway holds it in that room. A socket attached here
   * gets it directly, without the round trip through NATS.
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
      local.conn.deliver(event);
      return;
    }
    await this.#bus.requestSubject(
      signalingSubjects.socket(this.#bus.prefix, to, roomId),
      { event } satisfies SocketRelay,
      socketRelayAck,
      { ...opts, noResponders: 'SOCKET_ID_DOES_NOT_EXIST' },
    );
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
      const data = await att.conn.call(msg.call.method, msg.call.data, incoming.deadline);
      incoming.respond({ ok: true, data });
      return;
    }
    att.conn.deliver(msg.event);
    incoming.respond({ ok: true, data: {} });
  }

  #join(roomId: string, socketId: string): void {
    let room = this.#rooms.get(roomId);
    if (room === undefined) {
      const members = new Set<string>();
      const sub = this.#bus.subscribe(
        signalingSubjects.room(this.#bus.prefix, roomId),
        roomBroadcast,
        (msg) => {
          if (msg.roomId !== roomId) {
            this.#log.warn({ roomId, got: msg.roomId }, 'broadcast for another room; dropped');
            return;
          }
          for (const member of members) {
            if (member === msg.except) continue;
            this.#sockets.get(member)?.conn.deliver(msg.event);
          }
        },
      );
      room = { sub, members };
      this.#rooms.set(roomId, room);
    }
    room.members.add(socketId);
  }

  #leave(roomId: string, socketId: string): void {
    const room = this.#rooms.get(roomId);
    if (room === undefined) return;
    // Another connection may hold the same socketId in this room (a reconnect in progress).
    const att = this.#sockets.get(socketId);
    if (att?.roomId === roomId) return;
    room.members.delete(socketId);
    if (room.members.size === 0) {
      room.sub.unsubscribe();
      this.#rooms.delete(roomId);
    }
  }
}
