/**
 * A leader lease in NATS KV: whoever holds the key `leader` of the bucket is the leader. The
 * bucket's TTL is the lease: the holder rewrites the key every third of it (compare-and-set on
 * its revision), so a holder that dies loses it within one TTL and another instance, trying
 * every third of it, takes it over. A holder that stops gracefully deletes the key at once.
 * Listeners (`onChange`) hear each gain and loss.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@switchboard/service';

const KEY = 'leader';

export class LeaderLease {
  readonly #bucket: string;
  readonly #holder: string;
  readonly #ttlMs: number;
  readonly #log: Logger;
  #kv: KV | undefined;
  #revision: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  readonly #listeners: ((leader: boolean) => void)[] = [];

  constructor(bucket: string, holder: string, ttlMs: number, log: Logger) {
    this.#bucket = bucket;
    this.#holder = holder;
    this.#ttlMs = ttlMs;
    this.#log = log.child({ component: 'lease' });
  }

  get leader(): boolean {
    return this.#revision !== undefined;
  }

  /** Call `listener` with true when this instance takes the lease, false when it loses it. */
  onChange(listener: (leader: boolean) => void): void {
    this.#listeners.push(listener);
  }

  #changed(leader: boolean): void {
    for (const l of this.#listeners) l(leader);
  }

  start(nc: () => NatsConnection | undefined): void {
    const tick = async (): Promise<void> => {
      if (this.#busy) return;
      this.#busy = true;
      try {
        await this.#tick(nc());
      } finally {
        this.#busy = false;
      }
    };
    void tick();
    this.#timer = setInterval(
      () => {
        void tick();
      },
      Math.max(50, Math.floor(this.#ttlMs / 3)),
    );
  }

  async #tick(nc: NatsConnection | undefined): Promise<void> {
    try {
      if (nc === undefined) throw new Error('not connected to NATS');
      this.#kv ??= await new Kvm(nc).create(this.#bucket, { ttl: this.#ttlMs, history: 1 });
      const kv = this.#kv;
      if (this.#revision !== undefined) {
        this.#revision = await kv.update(KEY, this.#holder, this.#revision);
        return;
      }
      this.#revision = await kv.create(KEY, this.#holder);
      this.#log.info({ holder: this.#holder }, 'leader lease taken');
      this.#changed(true);
    } catch (err) {
      if (this.#revision !== undefined) {
        this.#log.warn({ err }, 'leader lease lost');
        this.#revision = undefined;
        this.#changed(false);
      }
      // Not the holder (the key exists), or NATS is away: a follower for now.
    }
  }

  /** Stop; a holder gives the lease up at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const kv = this.#kv;
    const revision = this.#revision;
    this.#revision = undefined;
    if (kv === undefined || revision === undefined) return;
    this.#changed(false);
    try {
      await kv.delete(KEY, { previousSeq: revision });
      this.#log.info('leader lease given up');
    } catch (err) {
      this.#log.warn({ err }, 'giving up the leader lease failed; it expires by itself');
    }
  }
}
