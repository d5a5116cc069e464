/**
 * Where a room's peers live: its routes (one router per worker slot it spans) and the pipes
 * between them.
 *
 * - A peer goes to the room's least-loaded route whose worker is under
 *   MEDIASOUP_WORKER_MAX_LOAD; when none is, the room spreads to the least-loaded worker it
 *   does not use yet.
 * - Producers reach peers on other routes through pipeToRouter, once per producer and
 *   router, so every participant receives every producer wherever it lives.
 *
 * It tells its room through events when a worker hosting one of its routes died and when a
 * route's active-speaker observer names a speaker.
 */
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import { ProtocolError } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { createRoute, routeAlive, type Route } from './route.ts';
import type { WorkerPool, WorkerSlot } from './workers.ts';

export interface PlacementOptions {
  roomId: string;
  /** Where a route on a new worker comes from. */
  pool: Pick<WorkerPool, 'leastLoaded'>;
  /** A worker's load beyond which the room takes another worker (MEDIASOUP_WORKER_MAX_LOAD). */
  maxLoad: number;
  log: Logger;
  /** Makes the room's router on a worker: createRoute (unit tests pass a fake). */
  createRoute?: (slot: WorkerSlot, roomId: string) => Promise<Route>;
}

export interface PlacementEvents {
  /** A worker hosting one of the routes died: the room's media is gone. */
  workerclose: [slot: number];
  /** A route's active-speaker observer named the loudest audio producer. */
  dominantspeaker: [producer: types.Producer];
}

/** A (data) producer to make available on another router. */
export type PipeKind = 'producer' | 'data';

export class Placement extends EventEmitter<PlacementEvents> {
  readonly #o: PlacementOptions;
  readonly #createRoute: (slot: WorkerSlot, roomId: string) => Promise<Route>;
  /** Routes by worker slot index; a promise while the router is being created. */
  readonly #routes = new Map<number, Promise<Route>>();
  /** pipeToRouter done (or in progress) per `<producerId>:<routerId>`. */
  readonly #pipes = new Map<string, Promise<void>>();
  #closed = false;

  constructor(options: PlacementOptions) {
    super();
    this.#o = options;
    this.#createRoute = options.createRoute ?? createRoute;
  }

  /** Worker slots the room has routers on. */
  get slots(): number[] {
    return [...this.#routes.keys()];
  }

  /** The route for a new peer. */
  async pick(signal: AbortSignal): Promise<Route> {
    const routes = (await Promise.allSettled(this.#routes.values()))
      .filter((r): r is PromiseFulfilledResult<Route> => r.status === 'fulfilled')
      .map((r) => r.value)
      .filter(routeAlive);
    const open = routes.filter((r) => r.slot.load < this.#o.maxLoad);
    const best = open.reduce<Route | undefined>(
      (b, r) => (b === undefined || r.slot.load < b.slot.load ? r : b),
      undefined,
    );
    if (best !== undefined) return best;
    // The room is new, or outgrew its workers: take the least-loaded worker it does not use.
    const slot = await this.#o.pool.leastLoaded(signal, new Set(routes.map((r) => r.slot.index)));
    return await this.#route(slot);
  }

  async #route(slot: WorkerSlot): Promise<Route> {
    const existing = this.#routes.get(slot.index);
    if (existing !== undefined) {
      const route = await existing;
      if (route.slot === slot && routeAlive(route)) return route;
    }
    const pending = this.#createRoute(slot, this.#o.roomId);
    this.#routes.set(slot.index, pending);
    try {
      const route = await pending;
      if (this.#closed) {
        route.router.close();
        throw new ProtocolError('MEDIA_RESET', 'the room is being re-created');
      }
      route.router.on('workerclose', () => {
        this.emit('workerclose', slot.index);
      });
      route.speaker.on('dominantspeaker', ({ producer }) => {
        this.emit('dominantspeaker', producer);
      });
      if (this.#routes.size > 1) {
        this.#o.log.info({ slots: this.slots }, 'room spans several workers (pipeToRouter)');
      }
      return route;
    } catch (err) {
      if (this.#routes.get(slot.index) === pending) this.#routes.delete(slot.index);
      throw err;
    }
  }

  /** Make `id` (a producer or data producer on `from`) available on `to`'s router. */
  async pipe(kind: PipeKind, id: string, from: Route, to: Route): Promise<void> {
    if (from.router === to.router) return;
    const key = `${id}:${to.router.id}`;
    let pending = this.#pipes.get(key);
    if (pending === undefined) {
      pending = from.router
        .pipeToRouter(
          kind === 'producer'
            ? { producerId: id, router: to.router }
            : { dataProducerId: id, router: to.router },
        )
        .then(() => undefined);
      this.#pipes.set(key, pending);
      pending.catch(() => {
        if (this.#pipes.get(key) === pending) this.#pipes.delete(key);
      });
    }
    await pending;
  }

  /** A (data) producer closed: its pipes went with it. */
  forget(id: string): void {
    for (const key of this.#pipes.keys()) {
      if (key.startsWith(`${id}:`)) this.#pipes.delete(key);
    }
  }

  /** Close every router (transports, producers and consumers close with them). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#routes.values()) {
      pending.then(
        (route) => {
          route.router.close();
        },
        () => undefined,
      );
    }
    this.#routes.clear();
  }
}
