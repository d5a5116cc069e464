/**
 * Freezes: a video producer whose camera silently stops. Two signs tell it: every stream of
 * the producer scored 0 by mediasoup, or a live (unpaused) producer whose byte count stopped
 * growing between two checks (the media node calls check() every MEDIA_FREEZE_CHECK_MS). A
 * producer freezes once ('freeze') until it recovers.
 */
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import type { Logger } from '@switchboard/service';
import { isClosed, type MediaPeer } from './peer.ts';

export interface FreezesEvents {
  /** `owner`'s `producer` froze. */
  freeze: [owner: MediaPeer, producer: types.Producer];
}

export class Freezes extends EventEmitter<FreezesEvents> {
  readonly #log: Logger;
  /** Video producers' byte counts at the last freeze check, and those frozen now. */
  readonly #bytes = new Map<string, number>();
  readonly #frozen = new Set<string>();

  constructor(log: Logger) {
    super();
    this.#log = log;
  }

  /** Watch a new video producer's scores. */
  watch(owner: MediaPeer, producer: types.Producer): void {
    producer.on('score', (scores) => {
      // Every stream at 0 is a freeze; only every stream back above 0 ends it (a simulcast
      // producer's streams report one by one).
      if (scores.length === 0) return;
      if (scores.every((s) => s.score === 0)) this.#set(owner, producer, true);
      else if (scores.every((s) => s.score > 0)) this.#set(owner, producer, false);
    });
  }

  /** The producer was resumed: its byte count is measured afresh. */
  resumed(producerId: string): void {
    this.#bytes.delete(producerId);
  }

  /** The producer closed. */
  forget(producerId: string): void {
    this.#bytes.delete(producerId);
    this.#frozen.delete(producerId);
  }

  /** Check video producers' byte counts: one that stopped growing while live is frozen. */
  async check(peers: readonly MediaPeer[]): Promise<void> {
    for (const peer of peers) {
      for (const producer of peer.producers.values()) {
        if (producer.kind !== 'video' || producer.closed) continue;
        if (producer.paused) {
          this.#bytes.delete(producer.id);
          continue;
        }
        let bytes = 0;
        try {
          for (const s of await producer.getStats()) bytes += s.byteCount;
        } catch (err) {
          if (!isClosed(producer)) this.#log.debug({ err }, 'producer stats');
          continue;
        }
        const before = this.#bytes.get(producer.id);
        this.#bytes.set(producer.id, bytes);
        // Only a producer that has sent something can stop sending.
        if (before !== undefined && before > 0) this.#set(peer, producer, bytes === before);
      }
    }
  }

  #set(owner: MediaPeer, producer: types.Producer, frozen: boolean): void {
    if (frozen === this.#frozen.has(producer.id)) return;
    if (!frozen) {
      this.#frozen.delete(producer.id);
      return;
    }
    this.#frozen.add(producer.id);
    this.#log.info({ socketId: owner.socketId, producerId: producer.id }, 'producer froze');
    this.emit('freeze', owner, producer);
  }
}
