/**
 * How the rooms service reaches clients: room broadcasts (fanned out by every gateway
 * with members in the room) and control messages to one gateway. Both are plain NATS
 * publishes after the database change committed; a failure to publish is logged, never
 * thrown back into a request whose change already happened.
 */
import type { BusLike } from '@switchboard/bus';
import { signalingSubjects, type GatewayControl, type RoomBroadcast } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

export class Notifier {
  readonly #bus: BusLike;
  readonly #log: Logger;

  constructor(bus: BusLike, log: Logger) {
    this.#bus = bus;
    this.#log = log.child({ component: 'notifier' });
  }

  broadcast(msg: RoomBroadcast): void {
    try {
      this.#bus.publish(signalingSubjects.room(this.#bus.prefix, msg.roomId), msg);
    } catch (err) {
      this.#log.error({ err, roomId: msg.roomId, event: msg.event.a }, 'room broadcast lost');
    }
  }

  /** A control message to one gateway (detach a socket, update a session). */
  control(gatewayId: string, msg: GatewayControl): void {
    try {
      this.#bus.publish(signalingSubjects.gatewayControl(this.#bus.prefix, gatewayId), msg);
    } catch (err) {
      this.#log.error({ err, gatewayId, socketId: msg.socketId, type: msg.type }, 'control lost');
    }
  }
}
