/**
 * The hosts registered on this gateway: for each host name, its connections here ("lines")
 * and one answerer that serves the name's offers from the call queue to them, each offer to
 * the line ringing the fewest calls. The answerer runs while the name has a line here.
 */
import type { Logger } from '@switchboard/service';
import type { Answerer, CallQueue, IncomingCall, IncomingCallEvents } from './call-queue.ts';

/** One host connection, as the registry sees it. */
export interface HostLine {
  readonly connectionId: string;
  /** Offers it rings now (handed to its client, not answered or refused yet). */
  readonly ringing: number;
  /** Ring an offer on it; undefined if it cannot after all. */
  ring(call: IncomingCall): IncomingCallEvents | undefined;
}

class HostAnswerer implements Answerer {
  readonly lines = new Set<HostLine>();
  readonly #maxRinging: number;
  #waiters: (() => void)[] = [];
  stop: (() => Promise<void>) | undefined;

  constructor(maxRinging: number) {
    this.#maxRinging = maxRinging;
  }

  hasRoom(): boolean {
    for (const line of this.lines) if (line.ringing < this.#maxRinging) return true;
    return false;
  }

  async waitForRoom(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.#waiters.push(done);
    });
  }

  /** Something changed: a line came, or a ringing offer settled. */
  changed(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  take(call: IncomingCall): IncomingCallEvents | undefined {
    let best: HostLine | undefined;
    for (const line of this.lines) {
      if (line.ringing >= this.#maxRinging) continue;
      if (best === undefined || line.ringing < best.ringing) best = line;
    }
    return best?.ring(call);
  }
}

export class HostRegistry {
  readonly #queue: CallQueue;
  readonly #log: Logger;
  readonly #maxRinging: number;
  readonly #hosts = new Map<string, HostAnswerer>();

  constructor(queue: CallQueue, log: Logger, opts: { maxRingingPerLine: number }) {
    this.#queue = queue;
    this.#log = log.child({ component: 'hosts' });
    this.#maxRinging = opts.maxRingingPerLine;
  }

  /** Host names with a line here. */
  get size(): number {
    return this.#hosts.size;
  }

  /** Register a line for `host`; the returned function removes it. */
  add(host: string, line: HostLine): () => Promise<void> {
    let answerer = this.#hosts.get(host);
    if (answerer === undefined) {
      answerer = new HostAnswerer(this.#maxRinging);
      this.#hosts.set(host, answerer);
      answerer.stop = this.#queue.serve(host, answerer);
      this.#log.debug({ host }, 'serving host offers');
    }
    const a = answerer;
    a.lines.add(line);
    a.changed();
    return async () => {
      if (!a.lines.delete(line)) return;
      if (a.lines.size > 0 || this.#hosts.get(host) !== a) return;
      this.#hosts.delete(host);
      a.changed();
      await a.stop?.();
    };
  }

  /** A line of `host` may have room again (an offer it rang settled). */
  changed(host: string): void {
    this.#hosts.get(host)?.changed();
  }
}
