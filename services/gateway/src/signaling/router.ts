/**
 * The gateway's side of the bus for signaling: which sockets it holds, and how events
 * reach them.
 *
 * - Room broadcasts: fanout.ts (`Fanouts`): one subscription per room with members here, in
 *   the order of the room's broadcast numbers, through the batcher. Anything else for a
 *   member of a room goes through `#direct`, which writes the room's queued broadcasts first.
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
import { type Bus, type BusSubscription, type Incoming } from '@switchboard/bus';
import {
  ProtocolError,
  Rooms,
  gatewayControl,
  roomToken,
  signalingSubjects,
  socketMessage,
  type DetachReason,
  type EventFrameMessage,
  type Member,
  type SessionGrants,
  type ServerRequest,
  type SocketMessage,
  type SocketRelay,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { BatcherOptions } from './batcher.ts';
import { Fanouts, roomStateEvent } from './fanout.ts';
import type { EncodedFrame } from './frames.ts';
import type { SignalingMetrics } from './metrics.ts';
import { Relays, type RelayOptions } from './relays.ts';
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
  #control: BusSubscription | undefined;
  readonly #stopped = new AbortController();
  /** Relays to sockets of other gateways, and theirs to sockets here. */
  readonly #relays: Relays;
  /** The rooms with members here, and their broadcasts. */
  readonly #fanouts: Fanouts;

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
    this.#fanouts = new Fanouts({
      ...batching,
      bus,
      log: this.#log,
      connection: (socketId) => this.#sockets.get(socketId)?.conn,
      attachedIn: (socketId, roomId) => this.#sockets.get(socketId)?.roomId === roomId,
      stopped: this.#stopped.signal,
    });
  }

  /** Sessions attached here now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Rooms with members here now. */
  get rooms(): number {
    return this.#fanouts.size;
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
    this.#fanouts.stop();
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
    this.#fanouts.join(roomId, socketId);
    let settled = false;
    return {
      commit: (roomSeq?: number) => {
        if (settled) throw new Error('attachment already settled');
        settled = true;
        this.#fanouts.answered(roomId, socketId, conn, roomSeq);
        if (previous !== undefined && previous.sub !== sub) {
          previous.sub.unsubscribe();
          this.#fanouts.leave(previous.roomId, socketId);
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
          this.#fanouts.leave(roomId, socketId);
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
    this.#fanouts.leave(att.roomId, socketId);
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
    opts: RelayOptions,
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
    const senderRoom = signalingSubjects.senderRoom(incoming.subject);
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

  /**
   * `att`'s connection, for anything but a broadcast of its room: the room's queued
   * broadcasts are written first, so that nothing from or about a peer (a relay, a call, the
   * room's state…) overtakes that peer's eventJoin.
   */
  #direct(att: Attachment): Attachable {
    this.#fanouts.flush(att.roomId);
    return att.conn;
  }

  /**
   * Every room with members here is resynced: after this gateway was cut off from NATS, the
   * broadcasts of that time are lost.
   */
  resyncRooms(): void {
    this.#fanouts.resyncAll();
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
}
