/**
 * Something this client publishes (camera, microphone, screen): a LocalTrack keeps its
 * MediaStreamTrack and its mute state across media restarts; the RoomMedia that publishes it
 * gives it a producer on each generation's send transport (`published()`), takes it away when
 * the transports go (`transportClosed()`), and hears of its closing by its user (`onClose`).
 */
import type { types as ms } from 'mediasoup-client';
import type { MediaKind, ProducerSource } from '@switchboard/protocol';
import { Emitter } from './emitter.ts';
import type { Session } from './session.ts';

/** What the RoomMedia that publishes a LocalTrack hears of it. */
interface LocalTrackEvents {
  /** The track's user closed it: it is no longer published. */
  '@close': undefined;
}

/** Something this client publishes. Keeps its track across media restarts. */
export class LocalTrack {
  readonly source: ProducerSource;
  readonly track: MediaStreamTrack;
  readonly #session: Session;
  readonly #events: Emitter<LocalTrackEvents>;
  /** The current producer (undefined while the media restarts). */
  #producer: ms.Producer | undefined;
  #muted = false;
  #serverMuted = false;
  #closed = false;

  /** @internal */
  constructor(session: Session, source: ProducerSource, track: MediaStreamTrack) {
    this.#session = session;
    this.source = source;
    this.track = track;
    this.#events = new Emitter<LocalTrackEvents>((err, event) => {
      session.reportError(
        err instanceof Error ? err : new Error(String(err)),
        `media: a listener of ${event} threw`,
      );
    });
  }

  get kind(): MediaKind {
    return this.track.kind === 'audio' ? 'audio' : 'video';
  }

  get muted(): boolean {
    return this.#muted;
  }

  /** Muted by the server API (see RoomMediaEvents.serverMuted). */
  get serverMuted(): boolean {
    return this.#serverMuted;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal the current producer (undefined while the media restarts) */
  get producer(): ms.Producer | undefined {
    return this.#producer;
  }

  get producerId(): string | undefined {
    return this.#producer?.id;
  }

  /**
   * The browser's RTCRtpSender of the current producer (undefined while the media restarts),
   * for what the SDK does not wrap: its statistics, its encodings. What is changed on it
   * behind the SDK's back (a `replaceTrack`) is not carried over to the next generation.
   */
  get sender(): RTCRtpSender | undefined {
    return this.#producer?.rtpSender;
  }

  /** @internal The RoomMedia's: `listener` runs when the track's user closes it. */
  onClose(listener: () => void): () => void {
    return this.#events.on('@close', listener);
  }

  /** Stop sending (the others' consumers pause: eventProducerPaused). */
  async mute(): Promise<void> {
    await this.#setMuted(true);
  }

  async unmute(): Promise<void> {
    await this.#setMuted(false);
  }

  /** Stop publishing this track (the track itself is stopped too). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.emit('@close', undefined);
    const p = this.#producer;
    this.#producer = undefined;
    this.track.stop();
    if (p === undefined) return;
    p.close();
    await this.#session.request('closeProducer', { producerId: p.id });
  }

  /** @internal Its producer on the current send transport (paused when the track is muted). */
  published(producer: ms.Producer): void {
    if (this.#muted) producer.pause();
    this.#producer = producer;
  }

  /** @internal The send transport closed (a media restart): no producer until the next. */
  transportClosed(): void {
    this.#producer?.close();
    this.#producer = undefined;
  }

  /** @internal The server API muted or unmuted it (eventProducerMuted). */
  markServerMuted(muted: boolean): void {
    this.#serverMuted = muted;
  }

  /**
   * @internal The RoomMedia closed, or never got it published: closed without a word to the
   * server (`stopTrack`: the track is stopped too).
   */
  markClosed(stopTrack: boolean): void {
    this.#closed = true;
    if (stopTrack) this.track.stop();
  }

  async #setMuted(muted: boolean): Promise<void> {
    if (this.#closed || this.#muted === muted) return;
    this.#muted = muted;
    const p = this.#producer;
    if (p === undefined) return; // applied when it is published again
    const apply = (m: boolean): void => {
      if (m) p.pause();
      else p.resume();
    };
    apply(muted);
    try {
      await this.#session.request(muted ? 'pauseProducer' : 'resumeProducer', {
        producerId: p.id,
      });
    } catch (err) {
      // The server did not take it: this side goes back to what the others see.
      if (this.#producer === p) {
        this.#muted = !muted;
        apply(!muted);
      }
      throw err;
    }
  }
}
