/**
 * Placement (src/placement.ts) and consumer wiring (src/wiring.ts) on their own, against
 * fakes: hand-written stand-ins for mediasoup's Router, ActiveSpeakerObserver, Worker,
 * Consumer, DataConsumer and transports, for the worker pool and its slots, and for a room's
 * peers, each with only what Placement or ConsumerWiring touches. The real components, in a
 * running platform, are test/sfu/media.test.ts's.
 */
import { EventEmitter } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { types } from 'mediasoup';
import type { MediaEventFrame } from '@switchboard/protocol';
import type { MediaTransport, ProducerData } from '../src/peer.ts';
import { Placement, type PipeKind } from '../src/placement.ts';
import type { Route } from '../src/route.ts';
import { ConsumerWiring, type WiredPeer } from '../src/wiring.ts';
import type { WorkerSlot } from '../src/workers.ts';

const log = pino({ level: 'silent' });
const signal = new AbortController().signal;

// ------------------------------------------------------------------------------ fakes
// Each fake is cast (`as unknown as`) to the mediasoup type it stands in for; it has only
// what Placement and ConsumerWiring use of it.

/** A fake worker: alive until the test says it died. */
interface FakeWorker {
  died: boolean;
  closed: boolean;
}

/** A fake slot of the worker pool (index, load, worker). */
function fakeSlot(index: number, load = 0): WorkerSlot & { worker: FakeWorker } {
  const worker: FakeWorker = { died: false, closed: false };
  return {
    index,
    load,
    port: 0,
    worker: worker as unknown as FakeWorker & types.Worker,
    webRtcServer: {} as unknown as types.WebRtcServer,
  };
}

/** A fake mediasoup Router: pipeToRouter() is recorded (and fails while `failPipes`). */
class FakeRouter extends EventEmitter {
  static #routers = 0;
  readonly id = `router-${String(FakeRouter.#routers++)}`;
  closed = false;
  /** What canConsume() answers. */
  consumable = true;
  failPipes = false;
  readonly piped: { id: string | undefined; to: string }[] = [];

  close(): void {
    this.closed = true;
  }

  async pipeToRouter(o: {
    producerId?: string;
    dataProducerId?: string;
    router: FakeRouter;
  }): Promise<object> {
    this.piped.push({ id: o.producerId ?? o.dataProducerId, to: o.router.id });
    await tick();
    if (this.failPipes) throw new Error('pipe failed');
    return {};
  }

  canConsume(): boolean {
    return this.consumable;
  }
}

/** A fake route on `slot`: a FakeRouter and a fake active-speaker observer (an emitter). */
function fakeRoute(slot: WorkerSlot = fakeSlot(0)): Route & { router: FakeRouter } {
  return {
    router: new FakeRouter() as unknown as FakeRouter & types.Router,
    slot,
    speaker: new EventEmitter() as unknown as types.ActiveSpeakerObserver,
  };
}

/**
 * A Placement over fake slots: a fake pool picking the least-loaded live slot, preferring
 * those not avoided (as WorkerPool.leastLoaded), and a fake createRoute that may be held.
 */
function placementOver(slots: (WorkerSlot & { worker: FakeWorker })[], maxLoad = 2) {
  const avoided: number[][] = [];
  const created: Route[] = [];
  let hold: Promise<void> | undefined;
  const placement = new Placement({
    roomId: 'room',
    maxLoad,
    log,
    pool: {
      leastLoaded: async (_signal: AbortSignal, avoiding?: ReadonlySet<number>) => {
        const avoid = avoiding ?? new Set<number>();
        avoided.push([...avoid]);
        const live = slots.filter((s) => !s.worker.died);
        const fresh = live.filter((s) => !avoid.has(s.index));
        const pick = [...(fresh.length > 0 ? fresh : live)].sort((a, b) => a.load - b.load)[0];
        if (pick === undefined) throw new Error('no live slot');
        return pick;
      },
    },
    createRoute: async (slot) => {
      await hold;
      const route = fakeRoute(slot);
      created.push(route);
      return route;
    },
  });
  return {
    placement,
    avoided,
    created,
    holdRoutes: (until: Promise<void>) => {
      hold = until;
    },
  };
}

/** A fake consumer of `producerId`: an emitter with the fields the wiring announces. */
class FakeConsumer extends EventEmitter {
  static #consumers = 0;
  readonly id = `consumer-${String(FakeConsumer.#consumers++)}`;
  readonly kind = 'video';
  readonly type = 'simple';
  readonly producerPaused = false;
  readonly rtpParameters = {};
  readonly producerId: string;
  readonly options: types.ConsumerOptions;

  constructor(options: types.ConsumerOptions) {
    super();
    this.producerId = options.producerId;
    this.options = options;
  }
}

/** A fake data consumer of `dataProducerId`. */
class FakeDataConsumer extends EventEmitter {
  readonly id = 'data-consumer';
  readonly label = 'chat';
  readonly protocol = '';
  readonly sctpStreamParameters = { streamId: 1, ordered: true };
  readonly dataProducerId: string;

  constructor(dataProducerId: string) {
    super();
    this.dataProducerId = dataProducerId;
  }
}

/** A fake peer: its route, its receiving transport (if any), what it produces and consumes. */
class FakePeer implements WiredPeer {
  readonly socketId: string;
  readonly route: Route & { router: FakeRouter };
  closed = false;
  recv: MediaTransport | undefined;
  rtpCapabilities: types.RtpCapabilities | undefined;
  readonly producers = new Map<string, types.Producer<ProducerData>>();
  readonly dataProducers = new Map<string, types.DataProducer<ProducerData>>();
  readonly consumers: FakeConsumer[] = [];
  readonly dataConsumers: FakeDataConsumer[] = [];

  constructor(socketId: string, route: Route & { router: FakeRouter }) {
    this.socketId = socketId;
    this.route = route;
  }

  get peer(): { socketId: string; userId: string } {
    return { socketId: this.socketId, userId: `user-${this.socketId}` };
  }

  /** Give it a receiving WebRTC transport (with SCTP or not). */
  receives(sctp: boolean): this {
    const transport = { sctpParameters: sctp ? {} : undefined };
    this.recv = {
      kind: 'webrtc',
      direction: 'recv',
      transport: transport as unknown as types.WebRtcTransport,
    };
    this.rtpCapabilities = { codecs: [] };
    return this;
  }

  consumes(producerId: string): boolean {
    return this.consumers.some((c) => c.producerId === producerId);
  }

  consumesData(dataProducerId: string): boolean {
    return this.dataConsumers.some((c) => c.dataProducerId === dataProducerId);
  }

  async consume(options: types.ConsumerOptions): Promise<types.Consumer> {
    await tick();
    const consumer = new FakeConsumer(options);
    this.consumers.push(consumer);
    return consumer as unknown as types.Consumer;
  }

  async consumeData(options: types.DataConsumerOptions): Promise<types.DataConsumer> {
    await tick();
    const dataConsumer = new FakeDataConsumer(options.dataProducerId);
    this.dataConsumers.push(dataConsumer);
    return dataConsumer as unknown as types.DataConsumer;
  }
}

/** A fake producer of `owner` (only what the wiring reads). */
function fakeProducer(id: string, owner: FakePeer): types.Producer<ProducerData> {
  const producer = {
    id,
    closed: false,
    appData: { socketId: owner.socketId, userId: owner.peer.userId, source: 'camera' as const },
  };
  return producer as unknown as types.Producer<ProducerData>;
}

/** A ConsumerWiring of a room of `peers`, whose pipes and sent events are recorded. */
function wiring(peers: FakePeer[]) {
  const pipes: { kind: PipeKind; id: string; from: string; to: string }[] = [];
  const sent: { to: string; event: MediaEventFrame }[] = [];
  const w = new ConsumerWiring({
    log,
    peers: () => peers,
    placement: {
      pipe: async (kind, id, from, to) => {
        pipes.push({ kind, id, from: from.router.id, to: to.router.id });
        await tick();
      },
    },
    send: (to, event) => {
      sent.push({ to, event });
    },
  });
  return { wiring: w, pipes, sent };
}

/** Let the wiring's background work finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await tick();
}

// ------------------------------------------------------------------------------ tests

describe('placement', () => {
  it("puts peers on the room's least-loaded route under the max load, and spreads to a worker it does not use when its routes are full", async () => {
    const slot0 = fakeSlot(0);
    const { placement, avoided, created } = placementOver([slot0, fakeSlot(1, 1)]);
    const first = await placement.pick(signal);
    expect(first.slot.index).toBe(0);
    expect(await placement.pick(signal)).toBe(first);
    expect(created).toHaveLength(1);

    slot0.load = 2;
    const second = await placement.pick(signal);
    expect(second.slot.index).toBe(1);
    expect(avoided.at(-1)).toEqual([0]);
    expect(placement.slots).toEqual([0, 1]);
    // Both routes open again: the least-loaded one.
    slot0.load = 0;
    expect(await placement.pick(signal)).toBe(first);
  });

  it('shares a router being created between concurrent picks', async () => {
    const { placement, created } = placementOver([fakeSlot(0)]);
    const [a, b] = await Promise.all([placement.pick(signal), placement.pick(signal)]);
    expect(a).toBe(b);
    expect(created).toHaveLength(1);
  });

  it("makes a route again on its slot when the slot's worker died and was replaced", async () => {
    const dying = fakeSlot(0);
    const slots = [dying];
    const { placement, created } = placementOver(slots);
    const before = await placement.pick(signal);
    dying.worker.died = true;
    const respawned = fakeSlot(0);
    slots.push(respawned);
    const after = await placement.pick(signal);
    expect(after).not.toBe(before);
    expect(after.slot).toBe(respawned);
    expect(created).toHaveLength(2);
    expect(placement.slots).toEqual([0]);
  });

  it('tells of a dead worker and of the active speaker of any of its routes', async () => {
    const { placement } = placementOver([fakeSlot(3)]);
    const route = await placement.pick(signal);
    const dead: number[] = [];
    const speakers: types.Producer[] = [];
    placement.on('workerclose', (slot) => dead.push(slot));
    placement.on('dominantspeaker', (producer) => speakers.push(producer));
    const producer = { id: 'p' } as unknown as types.Producer;
    route.speaker.emit('dominantspeaker', { producer });
    route.router.emit('workerclose');
    expect(speakers).toEqual([producer]);
    expect(dead).toEqual([3]);
  });

  it('pipes a producer to another router once; again once it is forgotten, or after a failure', async () => {
    const { placement } = placementOver([]);
    const from = fakeRoute();
    const to = fakeRoute();
    await Promise.all([
      placement.pipe('producer', 'p1', from, to),
      placement.pipe('producer', 'p1', from, to),
    ]);
    await placement.pipe('producer', 'p1', from, from);
    await placement.pipe('data', 'd1', from, to);
    expect(from.router.piped).toEqual([
      { id: 'p1', to: to.router.id },
      { id: 'd1', to: to.router.id },
    ]);

    placement.forget('p1');
    await placement.pipe('producer', 'p1', from, to);
    expect(from.router.piped).toHaveLength(3);

    from.router.failPipes = true;
    await expect(placement.pipe('producer', 'p2', from, to)).rejects.toThrow('pipe failed');
    from.router.failPipes = false;
    await placement.pipe('producer', 'p2', from, to);
    expect(from.router.piped.filter((p) => p.id === 'p2')).toHaveLength(2);
  });

  it('closes its routers on close, and one that was still being created', async () => {
    const { placement, created, holdRoutes } = placementOver([fakeSlot(0), fakeSlot(1)]);
    const first = await placement.pick(signal);
    first.slot.load = 2;
    let release = (): void => undefined;
    holdRoutes(
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    const pending = placement.pick(signal);
    await settle();
    placement.close();
    release();
    await expect(pending).rejects.toMatchObject({ errorName: 'MEDIA_RESET' });
    expect(created.map((r) => r.router.closed)).toEqual([true, true]);
  });
});

describe('consumer wiring', () => {
  it("consumes a new producer, paused, on every other peer that receives, piped from its owner's route, and announces it", async () => {
    const owner = new FakePeer('a', fakeRoute());
    const other = new FakePeer('b', fakeRoute()).receives(false);
    const notReceiving = new FakePeer('c', owner.route);
    const producer = fakeProducer('p1', owner);
    const { wiring: w, pipes, sent } = wiring([owner, other, notReceiving]);
    w.produced(owner, producer);
    await settle();

    expect(owner.consumers).toEqual([]);
    expect(notReceiving.consumers).toEqual([]);
    expect(other.consumers.map((c) => c.options)).toEqual([
      {
        producerId: 'p1',
        rtpCapabilities: other.rtpCapabilities,
        paused: true,
        enableRtx: true,
        appData: { from: 'a' },
      },
    ]);
    expect(pipes).toEqual([
      { kind: 'producer', id: 'p1', from: owner.route.router.id, to: other.route.router.id },
    ]);
    expect(sent).toEqual([
      {
        to: 'b',
        event: {
          a: 'eventNewConsumer',
          d: {
            peer: owner.peer,
            producerId: 'p1',
            id: other.consumers[0]?.id,
            kind: 'video',
            rtpParameters: {},
            type: 'simple',
            producerPaused: false,
            source: 'camera',
          },
        },
      },
    ]);
  });

  it('makes one consumer when a new producer and a new receiving transport ask for it at once', async () => {
    const owner = new FakePeer('a', fakeRoute());
    const other = new FakePeer('b', fakeRoute()).receives(false);
    const producer = fakeProducer('p1', owner);
    owner.producers.set(producer.id, producer);
    const { wiring: w } = wiring([owner, other]);
    w.receiving(other);
    w.produced(owner, producer);
    await settle();
    expect(other.consumers).toHaveLength(1);
    // And none again for a producer it consumes.
    w.receiving(other);
    await settle();
    expect(other.consumers).toHaveLength(1);
  });

  it('makes no consumer for a client that cannot receive the producer', async () => {
    const owner = new FakePeer('a', fakeRoute());
    const other = new FakePeer('b', fakeRoute()).receives(false);
    other.route.router.consumable = false;
    const { wiring: w, sent } = wiring([owner, other]);
    w.produced(owner, fakeProducer('p1', owner));
    await settle();
    expect(other.consumers).toEqual([]);
    expect(sent).toEqual([]);
  });

  it("relays a consumer's events to its peer until the room closes", async () => {
    const owner = new FakePeer('a', fakeRoute());
    const other = new FakePeer('b', owner.route).receives(false);
    const { wiring: w, sent } = wiring([owner, other]);
    w.produced(owner, fakeProducer('p1', owner));
    await settle();
    const consumer = other.consumers[0];
    consumer?.emit('producerpause');
    w.close();
    consumer?.emit('producerresume');
    expect(sent.map((s) => s.event.a)).toEqual(['eventNewConsumer', 'eventProducerPaused']);
  });

  it('tells a freeze to the peers consuming the producer only', async () => {
    const owner = new FakePeer('a', fakeRoute());
    const consuming = new FakePeer('b', owner.route).receives(false);
    const elsewhere = new FakePeer('c', owner.route);
    const { wiring: w, sent } = wiring([owner, consuming, elsewhere]);
    w.produced(owner, fakeProducer('p1', owner));
    await settle();
    sent.length = 0;
    w.frozen(owner, 'p1');
    expect(sent).toEqual([
      { to: 'b', event: { a: 'eventFreeze', d: { from: owner.peer, producerId: 'p1' } } },
    ]);
  });

  it('consumes a data producer on receiving transports with SCTP only', async () => {
    const owner = new FakePeer('a', fakeRoute());
    const sctp = new FakePeer('b', owner.route).receives(true);
    const noSctp = new FakePeer('c', owner.route).receives(false);
    const data = { id: 'd1', closed: false } as unknown as types.DataProducer<ProducerData>;
    const { wiring: w, sent } = wiring([owner, sctp, noSctp]);
    w.producedData(owner, data);
    await settle();
    expect(sctp.dataConsumers.map((c) => c.dataProducerId)).toEqual(['d1']);
    expect(noSctp.dataConsumers).toEqual([]);
    expect(sent).toEqual([
      {
        to: 'b',
        event: {
          a: 'eventNewDataConsumer',
          d: {
            peer: owner.peer,
            dataProducerId: 'd1',
            id: 'data-consumer',
            sctpStreamParameters: { streamId: 1, ordered: true },
            label: 'chat',
            protocol: '',
          },
        },
      },
    ]);
  });
});
