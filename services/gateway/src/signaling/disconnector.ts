/**
 * Tells the rooms service that sockets closed — and keeps telling it until it has heard.
 * A disconnect lost while the rooms service restarts would leave a session attached to a
 * socket that no longer exists (and this gateway alive, so nothing would expire it), so
 * each one is retried with backoff for as long as this process runs. If the process
 * stops first, its heartbeats stop too, and the rooms service puts every session it had
 * into the reconnect window.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BusLike } from '@switchboard/bus';
import { Rooms, isProtocolError, type RpcRequest } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

type Disconnect = RpcRequest<typeof Rooms.disconnect>;

const BACKOFF_MS = [250, 500, 1000, 2000, 5000];

export class Disconnector {
  readonly #bus: BusLike;
  readonly #log: Logger;
  readonly #inflight = new Set<Promise<void>>();
  readonly #stop = new AbortController();

  constructor(bus: BusLike, log: Logger) {
    this.#bus = bus;
    this.#log = log.child({ component: 'disconnector' });
  }

  /** Disconnects not yet acknowledged. */
  get pending(): number {
    return this.#inflight.size;
  }

  submit(req: Disconnect): void {
    const p = this.#deliver(req);
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  async #deliver(req: Disconnect): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#bus.request(Rooms.disconnect, req, { timeoutMs: 5000 });
        if (attempt > 0)
          this.#log.info({ socketId: req.socketId, attempt }, 'disconnect delivered');
        return;
      } catch (err) {
        // Retried while the rooms service or NATS is away for now (the code's retry class
        // says so); anything else will not change.
        if (!isProtocolError(err) || err.retry !== 'backoff') {
          this.#log.error({ err, socketId: req.socketId }, 'disconnect refused; giving up');
          return;
        }
        if (attempt === 0) {
          this.#log.warn({ err, socketId: req.socketId }, 'disconnect failed; retrying');
        }
      }
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] ?? 5000;
      try {
        await sleep(wait, undefined, { signal: this.#stop.signal });
      } catch {
        this.#log.error({ socketId: req.socketId }, 'disconnect not delivered before shutdown');
        return;
      }
    }
  }

  /** Wait for pending disconnects, at most `timeoutMs`; then stop retrying. */
  async flush(timeoutMs: number): Promise<void> {
    const all = Promise.all([...this.#inflight]);
    const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
    if ((await Promise.race([all.then(() => 'done' as const), timer])) === 'timeout') {
      this.#log.error({ pending: this.#inflight.size }, 'shutting down with disconnects pending');
    }
    this.#stop.abort();
    await all;
  }
}
