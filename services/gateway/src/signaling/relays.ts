/**
 * Relays to sockets of other gateways (`Router.relay` writes to its own sockets itself):
 *
 * - where each such socket was last found (its relay's reply names the gateway holding it),
 *   remembered for the room it was found in: a socketId alone never reaches across rooms;
 * - relay batches, `<p>.sig.gw.<gatewayId>.relay`: everything relayed to sockets of one
 *   other gateway in one event-loop turn goes as one request, acknowledged item by item once
 *   written to the sockets, with one batch per gateway in flight (a group commit: what comes
 *   meanwhile goes when it is answered). An item whose socket is not there (any more) is
 *   asked for on the socket's own subject instead (`sig.sock`);
 * - the batches other gateways send here, each item written to its socket if it is attached
 *   here in that room (`deliver`).
 */
import { type Bus, type BusSubscription, type Incoming, JsonText } from '@switchboard/bus';
import {
  ProtocolError,
  RELAY_BATCH_MAX_ITEMS,
  isProtocolError,
  relayBatch,
  relayBatchAck,
  signalingSubjects,
  socketRelayAck,
  type RelayBatch,
  type SocketRelay,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { SignalingMetrics } from './metrics.ts';
import { afterWrites } from './writes.ts';

/** Where a socket of another gateway was last found, and in which room. */
interface Located {
  gatewayId: string;
  roomId: string;
}

/** A relay waiting for the end of this event-loop turn, to go out in a batch. */
interface Queued {
  to: string;
  roomId: string;
  event: SocketRelay['event'];
  /** The batch item, encoded once: its length bounds the batch's size. */
  json: string;
  signal: AbortSignal;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Sockets of other gateways whose place is remembered (the oldest are forgotten first). */
const MAX_LOCATED = 65_536;
/**
 * Characters of items in one batch at most (more go in the next batch): well under NATS's
 * default max_payload of 1 MiB, even for 3-byte characters.
 */
const RELAY_BATCH_MAX_CHARS = 256 * 1024;
/**
 * Batches to one gateway in flight at once. Relays that come while they are go in the next
 * batch when one is answered: the busier the gateways, the fuller their batches (group commit);
 * an idle one sends at once.
 */
const RELAY_BATCHES_IN_FLIGHT = 1;

/** A relay's cancellation (the sender's socket closing) and trace. */
export interface RelayOptions {
  signal: AbortSignal;
  traceparent?: string;
}

export interface RelaysOptions {
  bus: Bus;
  gatewayId: string;
  log: Logger;
  metrics: Pick<SignalingMetrics, 'relayBatches' | 'relayBatchItems'>;
  /**
   * Write `event` to `socketId`'s socket if it is attached here in `roomId` (a batch's item);
   * false when it is not.
   */
  deliver: (socketId: string, roomId: string, event: SocketRelay['event']) => boolean;
}

export class Relays {
  readonly #bus: Bus;
  readonly #gatewayId: string;
  readonly #log: Logger;
  readonly #metrics: RelaysOptions['metrics'];
  readonly #deliver: RelaysOptions['deliver'];
  /** Sockets of other gateways, by socketId, as their replies said. */
  readonly #located = new Map<string, Located>();
  /** Relays of this turn by the gateway they go to; sent when the turn ends. */
  #queued = new Map<string, Queued[]>();
  /** Relay batches sent and not answered yet, by the gateway they went to. */
  readonly #inFlight = new Map<string, number>();
  #flushing = false;
  #sub: BusSubscription | undefined;

  constructor(opts: RelaysOptions) {
    this.#bus = opts.bus;
    this.#gatewayId = opts.gatewayId;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#deliver = opts.deliver;
  }

  /** Take the batches other gateways send here. */
  start(): void {
    this.#sub = this.#bus.subscribe(
      signalingSubjects.gatewayRelay(this.#bus.prefix, this.#gatewayId),
      relayBatch,
      (batch, incoming) => {
        this.#onRelayBatch(batch, incoming);
      },
    );
  }

  stop(): void {
    this.#sub?.unsubscribe();
  }

  /**
   * Relay an event to `to`, a socket of another gateway (or of none) in `roomId`. Resolves
   * once the gateway holding it wrote the event to its socket; SOCKET_ID_DOES_NOT_EXIST when
   * no gateway holds it in that room. One of a known gateway goes in this turn's batch to it.
   */
  async relay(
    to: string,
    roomId: string,
    event: SocketRelay['event'],
    opts: RelayOptions,
  ): Promise<void> {
    const at = this.#located.get(to);
    // Only for the room it was found in: a relay from another room takes `sig.sock`, where
    // the holder refuses it as before.
    if (at?.roomId === roomId) {
      if (opts.signal.aborted) throw new ProtocolError('CANCELLED');
      await new Promise<void>((resolve, reject) => {
        const item: RelayBatch['items'][number] = { to, roomId, event };
        this.#enqueue(at.gatewayId, {
          to,
          roomId,
          event,
          json: JSON.stringify(item),
          signal: opts.signal,
          resolve,
          reject,
        });
      });
      return;
    }
    await this.#relayToSocket(to, roomId, event, opts);
  }

  /** The relay on the socket's own subject: whoever holds it answers, and says who it is. */
  async #relayToSocket(
    to: string,
    roomId: string,
    event: SocketRelay['event'],
    opts: RelayOptions,
  ): Promise<void> {
    const ack = await this.#bus.requestSubject(
      signalingSubjects.socket(this.#bus.prefix, to, roomId),
      { event } satisfies SocketRelay,
      socketRelayAck,
      { ...opts, noResponders: 'SOCKET_ID_DOES_NOT_EXIST' },
    );
    if (ack.gatewayId === undefined || ack.gatewayId === this.#gatewayId) return;
    if (!this.#located.has(to) && this.#located.size >= MAX_LOCATED) {
      const oldest = this.#located.keys().next();
      if (oldest.done !== true) this.#located.delete(oldest.value);
    }
    this.#located.set(to, { gatewayId: ack.gatewayId, roomId });
  }

  #enqueue(gatewayId: string, item: Queued): void {
    let queue = this.#queued.get(gatewayId);
    if (queue === undefined) {
      queue = [];
      this.#queued.set(gatewayId, queue);
    }
    queue.push(item);
    // A gateway with its batches out gets this one when one of them is answered.
    if ((this.#inFlight.get(gatewayId) ?? 0) < RELAY_BATCHES_IN_FLIGHT) this.#scheduleFlush();
  }

  /** Send the queued relays once this turn's I/O callbacks ran: every frame read joins in. */
  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(() => {
      this.#flush();
    });
  }

  #flush(): void {
    this.#flushing = false;
    const queued = this.#queued;
    this.#queued = new Map();
    for (const [gatewayId, items] of queued) {
      if ((this.#inFlight.get(gatewayId) ?? 0) >= RELAY_BATCHES_IN_FLIGHT) {
        // They go when a batch to that gateway is answered, with whatever came meanwhile.
        this.#queued.set(gatewayId, items);
        continue;
      }
      let batch: Queued[] = [];
      let chars = 0;
      for (const item of items) {
        if (item.signal.aborted) {
          // The sender's socket closed meanwhile: nobody waits for the answer.
          item.reject(new ProtocolError('CANCELLED'));
          continue;
        }
        if (
          batch.length > 0 &&
          (batch.length >= RELAY_BATCH_MAX_ITEMS ||
            chars + item.json.length > RELAY_BATCH_MAX_CHARS)
        ) {
          this.#sendBatch(gatewayId, batch);
          batch = [];
          chars = 0;
        }
        batch.push(item);
        chars += item.json.length;
      }
      if (batch.length > 0) this.#sendBatch(gatewayId, batch);
    }
  }

  #sendBatch(gatewayId: string, batch: Queued[]): void {
    this.#metrics.relayBatches.inc();
    this.#metrics.relayBatchItems.inc(batch.length);
    this.#inFlight.set(gatewayId, (this.#inFlight.get(gatewayId) ?? 0) + 1);
    const answered = (): void => {
      const n = (this.#inFlight.get(gatewayId) ?? 1) - 1;
      if (n === 0) this.#inFlight.delete(gatewayId);
      else this.#inFlight.set(gatewayId, n);
      if (this.#queued.has(gatewayId)) this.#scheduleFlush();
    };
    const payload = new JsonText(`{"items":[${batch.map((i) => i.json).join(',')}]}`);
    this.#bus
      .requestSubject(
        signalingSubjects.gatewayRelay(this.#bus.prefix, gatewayId),
        payload,
        relayBatchAck,
        // Nobody there: that gateway is gone, and its sockets with it (or elsewhere now).
        { noResponders: 'SOCKET_ID_DOES_NOT_EXIST' },
      )
      .then(
        (ack) => {
          answered();
          if (ack.delivered.length !== batch.length) {
            this.#log.error(
              { gatewayId, items: batch.length, answers: ack.delivered.length },
              'relay batch answered for another number of items',
            );
            for (const item of batch) item.reject(new ProtocolError('SYSTEM'));
            return;
          }
          batch.forEach((item, i) => {
            if (ack.delivered[i] === true) item.resolve();
            else this.#fallBack(gatewayId, item);
          });
        },
        (err: unknown) => {
          answered();
          if (isProtocolError(err) && err.errorName === 'SOCKET_ID_DOES_NOT_EXIST') {
            for (const item of batch) this.#fallBack(gatewayId, item);
            return;
          }
          // TIMEOUT, SERVICE_UNAVAILABLE…: as a relay of its own would have failed.
          for (const item of batch) item.reject(err);
        },
      );
  }

  /**
   * The socket was not where it was found last: ask on its own subject, in the order the
   * batch held (relays to it that follow take that path too until it is found again).
   */
  #fallBack(gatewayId: string, item: Queued): void {
    if (this.#located.get(item.to)?.gatewayId === gatewayId) this.#located.delete(item.to);
    if (item.signal.aborted) {
      item.reject(new ProtocolError('CANCELLED'));
      return;
    }
    this.#relayToSocket(item.to, item.roomId, item.event, { signal: item.signal }).then(
      item.resolve,
      item.reject,
    );
  }

  /** A batch from another gateway: each item to its socket, if attached here in that room. */
  #onRelayBatch(batch: RelayBatch, incoming: Incoming): void {
    const delivered = batch.items.map((item) => this.#deliver(item.to, item.roomId, item.event));
    afterWrites(() => {
      incoming.respond({ ok: true, data: { delivered } });
    });
  }
}
