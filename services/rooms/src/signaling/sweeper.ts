/**
 * The rooms service's clock: every SWEEP_INTERVAL_MS it detaches the sessions of dead
 * gateways, takes dead media nodes out of placement (their rooms move) and ends the
 * sessions whose reconnect window has passed. Every replica sweeps;
 * row locks (SKIP LOCKED) keep them from handling the same room twice.
 *
 * Dead-gateway detection waits until this replica has been connected to NATS for a whole
 * GATEWAY_DEAD_AFTER_MS: after an outage of the rooms service (or of NATS), heartbeats
 * were missed by nobody's fault and every gateway would otherwise look dead.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bus } from '@switchboard/bus';
import type { Logger } from '@switchboard/service';
import type { MediaPlacement } from '../media/placement.ts';
import type { Membership } from './membership.ts';

export interface SweeperOptions {
  intervalMs: number;
  gatewayDeadAfterMs: number;
  mediaNodeDeadAfterMs: number;
}

export class Sweeper {
  readonly #membership: Membership;
  readonly #placement: MediaPlacement;
  readonly #bus: Bus;
  readonly #opts: SweeperOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  /** Since when NATS has been connected without a break (undefined: not connected). */
  #connectedSince: number | undefined;

  constructor(
    membership: Membership,
    placement: MediaPlacement,
    bus: Bus,
    opts: SweeperOptions,
    log: Logger,
  ) {
    this.#membership = membership;
    this.#placement = placement;
    this.#bus = bus;
    this.#opts = opts;
    this.#log = log.child({ component: 'sweeper' });
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    // While the database is away every pass fails: say so once, then every 30 s, and
    // say when it works again.
    let failingSince: number | undefined;
    let lastReport = 0;
    while (!signal.aborted) {
      try {
        await this.sweepOnce();
        if (failingSince !== undefined) {
          this.#log.info({ failedForMs: Date.now() - failingSince }, 'sweeping again');
          failingSince = undefined;
        }
      } catch (err) {
        const now = Date.now();
        failingSince ??= now;
        if (now - lastReport >= 30_000) {
          lastReport = now;
          this.#log.error(
            { err, failingForMs: now - failingSince },
            'sweep failed; retrying every interval',
          );
        }
      }
      try {
        await sleep(this.#opts.intervalMs, undefined, { signal });
      } catch {
        return; // stopping
      }
    }
  }

  /** One pass (exposed for tests and for shutdown's last pass). */
  async sweepOnce(): Promise<void> {
    const now = Date.now();
    if (!this.#bus.connected) this.#connectedSince = undefined;
    else this.#connectedSince ??= now;
    if (
      this.#connectedSince !== undefined &&
      now - this.#connectedSince >= this.#opts.gatewayDeadAfterMs
    ) {
      await this.#membership.detachDeadGateways();
    }
    if (
      this.#connectedSince !== undefined &&
      now - this.#connectedSince >= this.#opts.mediaNodeDeadAfterMs
    ) {
      await this.#placement.sweepDeadNodes();
    }
    const deadline = now + Math.max(this.#opts.intervalMs, 5000);
    const d = {
      signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(deadline - now)]),
      deadline,
    };
    const ended = await this.#membership.expire(d);
    if (ended > 0) this.#log.info({ ended }, 'sessions ended after their reconnect window');
    const closed = await this.#membership.closeEmptyRooms(d);
    if (closed > 0) this.#log.info({ closed }, 'rooms closed after their empty timeout');
  }

  /** Stop after the pass in progress. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}
