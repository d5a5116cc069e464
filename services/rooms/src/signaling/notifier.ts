/**
 * How the rooms service reaches clients: room broadcasts (fanned out by every gateway
 * with members in the room) and control messages to one gateway. Both are plain NATS
 * publishes after the database change committed; a failure to publish is logged, never
 * thrown back into a request whose change already happened.
 *
 * Broadcasts leave at the end of the event-loop turn (setImmediate), in the order they were
 * made, after the replies of the turn: the joiner's gateway reads its joinR before the
 * eventJoin it fans out to the room's other members, rather than after (the reply is what a
 * join waits for). A gateway whose room has no member here yet takes the reply's `roomSeq`
 * as where the room's numbers go on from, so the broadcast arriving after it is no gap.
 */
import type { Bus } from '@switchboard/bus';
import { signalingSubjects, type GatewayControl, type RoomBroadcast } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

export class Notifier {
  readonly #bus: Bus;
  readonly #log: Logger;
  #queued: RoomBroadcast[] = [];

  constructor(bus: Bus, log: Logger) {
    this.#bus = bus;
    this.#log = log.child({ component: 'notifier' });
  }

  broadcast(msg: RoomBroadcast): void {
    this.#queued.push(msg);
    if (this.#queued.length === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    const queued = this.#queued;
    this.#queued = [];
    for (const msg of queued) {
      try {
        this.#bus.publish(signalingSubjects.room(this.#bus.prefix, msg.roomId), msg);
      } catch (err) {
        this.#log.error({ err, roomId: msg.roomId, event: msg.event.a }, 'room broadcast lost');
      }
    }
  };

  /** A control message to one gateway (detach a socket, update a session). */
  control(gatewayId: string, msg: GatewayControl): void {
    try {
      this.#bus.publish(signalingSubjects.gatewayControl(this.#bus.prefix, gatewayId), msg);
    } catch (err) {
      this.#log.error({ err, gatewayId, socketId: msg.socketId, type: msg.type }, 'control lost');
    }
  }
}
