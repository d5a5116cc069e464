/**
 * Consumer wiring: who consumes whom in a room. Consuming is server-initiated: a new
 * producer is consumed (paused) on every other peer's receiving transport and announced with
 * eventNewConsumer; the client resumes it. A new receiving transport is given a consumer of
 * every producer of the other peers. Data producers alike (eventNewDataConsumer), on
 * receiving WebRTC transports with SCTP.
 *
 * A producer on another route is piped to the consumer's route first (Placement.pipe).
 * Consumers are created in the background: a failure is logged, never dropped. A frozen
 * producer is told to the peers consuming it (eventFreeze).
 */
import type { types } from 'mediasoup';
import type { MediaEventFrame } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { clientInput, mediaError } from './errors.ts';
import { isClosed, type MediaPeer, type MediaTransport, type ProducerData } from './peer.ts';
import type { Placement } from './placement.ts';

/** What the wiring reads of a peer and asks of it. */
export type WiredPeer = Pick<
  MediaPeer,
  | 'socketId'
  | 'peer'
  | 'route'
  | 'closed'
  | 'recv'
  | 'rtpCapabilities'
  | 'producers'
  | 'dataProducers'
  | 'consumes'
  | 'consumesData'
  | 'consume'
  | 'consumeData'
>;

export interface WiringOptions {
  /** The room's peers now (those placed). */
  peers(): readonly WiredPeer[];
  /** Makes a producer available on another route's router. */
  placement: Pick<Placement, 'pipe'>;
  log: Logger;
  /** Write a media event to one member's socket. */
  send(socketId: string, event: MediaEventFrame): void;
}

export class ConsumerWiring {
  readonly #o: WiringOptions;
  /** Per peer, the (data) producer ids a consumer is being created for on it. */
  readonly #consuming = new WeakMap<WiredPeer, Set<string>>();
  #closed = false;

  constructor(options: WiringOptions) {
    this.#o = options;
  }

  /** `owner` produced: consume the producer on every other peer. */
  produced(owner: WiredPeer, producer: types.Producer<ProducerData>): void {
    for (const other of this.#others(owner)) this.#spawn(this.#consume(other, owner, producer));
  }

  /** `owner` produced data: consume the data producer on every other peer. */
  producedData(owner: WiredPeer, data: types.DataProducer<ProducerData>): void {
    for (const other of this.#others(owner)) this.#spawn(this.#consumeData(other, owner, data));
  }

  /** Consume every producer of the other peers on `peer`'s new receiving transport. */
  receiving(peer: WiredPeer): void {
    for (const other of this.#others(peer)) {
      for (const producer of other.producers.values()) {
        this.#spawn(this.#consume(peer, other, producer));
      }
      for (const dataProducer of other.dataProducers.values()) {
        this.#spawn(this.#consumeData(peer, other, dataProducer));
      }
    }
  }

  /** `owner`'s producer froze: tell the peers consuming it. */
  frozen(owner: WiredPeer, producerId: string): void {
    for (const other of this.#others(owner)) {
      if (other.consumes(producerId)) {
        this.#o.send(other.socketId, { a: 'eventFreeze', d: { from: owner.peer, producerId } });
      }
    }
  }

  /** The room closed: nothing more is sent, and failures are expected. */
  close(): void {
    this.#closed = true;
  }

  /** The room's peers but `peer`. */
  #others(peer: WiredPeer): WiredPeer[] {
    return this.#o.peers().filter((other) => other !== peer);
  }

  async #consume(
    peer: WiredPeer,
    owner: WiredPeer,
    producer: types.Producer<ProducerData>,
  ): Promise<void> {
    const transport = peer.recv?.transport;
    const caps = peer.rtpCapabilities;
    if (transport === undefined || caps === undefined || producer.closed || peer.closed) return;
    // A new producer and a new receiving transport can both ask for the same consumer.
    if (peer.consumes(producer.id)) return;
    await this.#once(peer, producer.id, () =>
      this.#createConsumer(peer, owner, producer, transport, caps),
    );
  }

  async #createConsumer(
    peer: WiredPeer,
    owner: WiredPeer,
    producer: types.Producer<ProducerData>,
    transport: MediaTransport['transport'],
    caps: types.RtpCapabilities,
  ): Promise<void> {
    await this.#o.placement.pipe('producer', producer.id, owner.route, peer.route);
    if (!peer.route.router.canConsume({ producerId: producer.id, rtpCapabilities: caps })) {
      this.#o.log.info(
        { socketId: peer.socketId, producerId: producer.id },
        'the client cannot receive this producer (no common codec)',
      );
      return;
    }
    if (isClosed(producer) || isClosed(peer) || peer.recv?.transport !== transport) return;
    // The capabilities are what the client said it can receive.
    const consumer = await clientInput(() =>
      peer.consume({
        producerId: producer.id,
        rtpCapabilities: caps,
        paused: true,
        enableRtx: true,
        appData: { from: owner.socketId },
      }),
    );
    const send = (event: MediaEventFrame) => {
      if (!peer.closed && !this.#closed) this.#o.send(peer.socketId, event);
    };
    consumer.on('producerclose', () => {
      send({ a: 'eventConsumerClosed', d: { consumerId: consumer.id } });
    });
    consumer.on('producerpause', () => {
      send({ a: 'eventProducerPaused', d: { consumerId: consumer.id, producerId: producer.id } });
    });
    consumer.on('producerresume', () => {
      send({ a: 'eventProducerResumed', d: { consumerId: consumer.id, producerId: producer.id } });
    });
    consumer.on('score', (score) => {
      send({
        a: 'eventConsumerScore',
        d: { consumerId: consumer.id, score: score.score, producerScore: score.producerScore },
      });
    });
    consumer.on('layerschange', (layers) => {
      send({
        a: 'eventConsumerLayersChanged',
        d: {
          consumerId: consumer.id,
          layers:
            layers === undefined
              ? null
              : {
                  spatialLayer: layers.spatialLayer,
                  ...(layers.temporalLayer === undefined
                    ? {}
                    : { temporalLayer: layers.temporalLayer }),
                },
        },
      });
    });
    send({
      a: 'eventNewConsumer',
      d: {
        peer: owner.peer,
        producerId: producer.id,
        id: consumer.id,
        kind: consumer.kind,
        rtpParameters: consumer.rtpParameters as unknown as Extract<
          MediaEventFrame,
          { a: 'eventNewConsumer' }
        >['d']['rtpParameters'],
        type: consumer.type,
        producerPaused: consumer.producerPaused,
        source: producer.appData.source,
      },
    });
  }

  async #consumeData(
    peer: WiredPeer,
    owner: WiredPeer,
    dataProducer: types.DataProducer<ProducerData>,
  ): Promise<void> {
    const recv = peer.recv;
    if (recv?.kind !== 'webrtc' || dataProducer.closed || peer.closed) return;
    if (recv.transport.sctpParameters === undefined) return;
    if (peer.consumesData(dataProducer.id)) return;
    await this.#once(peer, dataProducer.id, () =>
      this.#createDataConsumer(peer, owner, dataProducer, recv),
    );
  }

  async #createDataConsumer(
    peer: WiredPeer,
    owner: WiredPeer,
    dataProducer: types.DataProducer<ProducerData>,
    recv: MediaTransport,
  ): Promise<void> {
    await this.#o.placement.pipe('data', dataProducer.id, owner.route, peer.route);
    if (isClosed(dataProducer) || isClosed(peer) || peer.recv !== recv) return;
    const dataConsumer = await peer.consumeData({ dataProducerId: dataProducer.id });
    dataConsumer.on('dataproducerclose', () => {
      if (!peer.closed && !this.#closed) {
        this.#o.send(peer.socketId, {
          a: 'eventDataConsumerClosed',
          d: { dataConsumerId: dataConsumer.id },
        });
      }
    });
    const sctp = dataConsumer.sctpStreamParameters;
    if (sctp === undefined) return;
    this.#o.send(peer.socketId, {
      a: 'eventNewDataConsumer',
      d: {
        peer: owner.peer,
        dataProducerId: dataProducer.id,
        id: dataConsumer.id,
        sctpStreamParameters: {
          streamId: sctp.streamId,
          ...(sctp.ordered === undefined ? {} : { ordered: sctp.ordered }),
          ...(sctp.maxPacketLifeTime === undefined
            ? {}
            : { maxPacketLifeTime: sctp.maxPacketLifeTime }),
          ...(sctp.maxRetransmits === undefined ? {} : { maxRetransmits: sctp.maxRetransmits }),
        },
        label: dataConsumer.label,
        protocol: dataConsumer.protocol,
      },
    });
  }

  /** Create `peer`'s consumer of (data) producer `id` unless one is being created. */
  async #once(peer: WiredPeer, id: string, create: () => Promise<void>): Promise<void> {
    let consuming = this.#consuming.get(peer);
    if (consuming === undefined) {
      consuming = new Set();
      this.#consuming.set(peer, consuming);
    }
    if (consuming.has(id)) return;
    consuming.add(id);
    try {
      await create();
    } finally {
      consuming.delete(id);
    }
  }

  /** Run background work (consumer creation); a failure is logged, never dropped. */
  #spawn(work: Promise<void>): void {
    work.catch((err: unknown) => {
      if (this.#closed) return;
      const e = mediaError(err);
      if (e.errorName === 'SYSTEM') this.#o.log.error({ err }, 'creating a consumer failed');
      else this.#o.log.warn({ err, code: e.errorName }, 'creating a consumer failed');
    });
  }
}
