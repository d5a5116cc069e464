/**
 * The pool of mediasoup workers this media node runs: one process per slot, each with
 * one WebRtcServer listening on one UDP and one TCP port (port base + slot index), so
 * a media pod needs a fixed, small set of ports instead of a host port range.
 *
 * A worker that dies is replaced in the same slot (same ports) after a short backoff;
 * `healthy` is false until it is back.
 */
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorker, type types } from 'mediasoup';
import type { Logger } from '@switchboard/service';

export interface WorkerPoolOptions {
  count: number;
  listenIp: string;
  announcedAddress: string | undefined;
  /** First WebRtcServer port; 0 lets every server pick a free port. */
  portBase: number;
  logLevel: types.WorkerLogLevel;
  workerBin: string | undefined;
  log: Logger;
}

export interface WorkerSlot {
  readonly index: number;
  worker: types.Worker;
  webRtcServer: types.WebRtcServer;
  /** The UDP and TCP port of this slot's WebRtcServer. */
  port: number;
  /** Transports + consumers on this worker (kept by whoever creates them: see track()). */
  load: number;
}

export interface WorkerPoolEvents {
  /** A worker died; its slot is being refilled. */
  workerdied: [slot: number, error: Error];
  /** A slot has a live worker again. */
  workerrestarted: [slot: number];
}

const RESPAWN_BACKOFF_MS = [0, 500, 1000, 2000, 5000];

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly #opts: WorkerPoolOptions;
  readonly #slots: (WorkerSlot | undefined)[];
  readonly #closing = new AbortController();
  readonly #respawns = new Set<Promise<void>>();
  #restarts = 0;

  private constructor(opts: WorkerPoolOptions) {
    super();
    this.#opts = opts;
    this.#slots = new Array<WorkerSlot | undefined>(opts.count).fill(undefined);
  }

  /** Start `count` workers, each with its WebRtcServer. Fails if any cannot start. */
  static async create(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    try {
      for (let i = 0; i < opts.count; i++) pool.#slots[i] = await pool.#start(i);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get slots(): readonly WorkerSlot[] {
    return this.#slots.filter((s): s is WorkerSlot => s !== undefined);
  }

  /** Every slot has a live worker. */
  get healthy(): boolean {
    return (
      !this.#closing.signal.aborted &&
      this.#slots.every((s) => s !== undefined && !s.worker.died && !s.worker.closed)
    );
  }

  /** A method, not a property read, so narrowing across awaits cannot fool the checker. */
  #isClosing(): boolean {
    return this.#closing.signal.aborted;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Slots whose worker is alive now. */
  live(): WorkerSlot[] {
    return this.slots.filter((s) => !s.worker.died && !s.worker.closed);
  }

  /** Total load over live workers. */
  get load(): number {
    return this.live().reduce((n, s) => n + s.load, 0);
  }

  /**
   * The least-loaded live worker, preferring those not in `avoid`. Waits (until `signal`)
   * while no worker is alive, e.g. while the only one is being restarted.
   */
  async leastLoaded(
    signal: AbortSignal,
    avoid: ReadonlySet<number> = new Set(),
  ): Promise<WorkerSlot> {
    for (;;) {
      const live = this.live();
      const fresh = live.filter((s) => !avoid.has(s.index));
      const pick = (fresh.length > 0 ? fresh : live).reduce<WorkerSlot | undefined>(
        (best, s) => (best === undefined || s.load < best.load ? s : best),
        undefined,
      );
      if (pick !== undefined) return pick;
      if (this.#isClosing()) throw new Error('the worker pool is closed');
      await once(this, 'workerrestarted', { signal });
    }
  }

  /**
   * Count a transport or consumer against its worker's load until it closes. Pass the
   * slot the object was created on (a respawned slot starts again from 0).
   */
  track(
    slot: WorkerSlot,
    object: { observer: { once(event: 'close', fn: () => void): unknown } },
  ): void {
    slot.load += 1;
    object.observer.once('close', () => {
      slot.load -= 1;
    });
  }

  async #start(index: number): Promise<WorkerSlot> {
    const { listenIp, announcedAddress, portBase } = this.#opts;
    const worker = await createWorker({
      logLevel: this.#opts.logLevel,
      ...(this.#opts.workerBin === undefined ? {} : { workerBin: this.#opts.workerBin }),
      appData: { slot: index },
    });
    try {
      const port = portBase === 0 ? 0 : portBase + index;
      const listen = (protocol: 'udp' | 'tcp'): types.TransportListenInfo => ({
        protocol,
        ip: listenIp,
        ...(announcedAddress === undefined ? {} : { announcedAddress }),
        ...(port === 0 ? {} : { port }),
      });
      const webRtcServer = await worker.createWebRtcServer({
        listenInfos: [listen('udp'), listen('tcp')],
      });
      const dump = await webRtcServer.dump();
      const slot: WorkerSlot = {
        index,
        worker,
        webRtcServer,
        port: dump.udpSockets[0]?.port ?? port,
        load: 0,
      };
      worker.on('died', (error) => {
        this.#onDied(slot, error);
      });
      this.#opts.log.info(
        { slot: index, pid: worker.pid, port: slot.port },
        'mediasoup worker started',
      );
      return slot;
    } catch (err) {
      worker.close();
      throw err;
    }
  }

  #onDied(slot: WorkerSlot, error: Error): void {
    this.#opts.log.error(
      { err: error, slot: slot.index, pid: slot.worker.pid },
      'mediasoup worker died',
    );
    this.emit('workerdied', slot.index, error);
    if (this.#closing.signal.aborted) return;
    const p = this.#respawn(slot.index);
    this.#respawns.add(p);
    void p.finally(() => this.#respawns.delete(p));
  }

  async #respawn(index: number): Promise<void> {
    for (let attempt = 0; !this.#closing.signal.aborted; attempt++) {
      const wait = RESPAWN_BACKOFF_MS[Math.min(attempt, RESPAWN_BACKOFF_MS.length - 1)] ?? 5000;
      try {
        await sleep(wait, undefined, { signal: this.#closing.signal });
      } catch {
        return; // closing
      }
      try {
        const slot = await this.#start(index);
        if (this.#isClosing()) {
          slot.worker.close();
          return;
        }
        this.#slots[index] = slot;
        this.#restarts++;
        this.emit('workerrestarted', index);
        return;
      } catch (err) {
        this.#opts.log.error({ err, slot: index, attempt }, 'restarting a mediasoup worker failed');
      }
    }
  }

  /**
   * Close every worker (their routers, transports and servers close with them) and wait
   * until their processes have exited, so none outlives this one.
   */
  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.all([...this.#respawns]);
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (slot === undefined || slot.worker.died) return;
        const exited = once(slot.worker, 'subprocessclose');
        if (!slot.worker.closed) slot.worker.close();
        if (slot.worker.subprocessClosed) return;
        await exited;
      }),
    );
  }
}
