/**
 * What a reader of the room events stream says when a read fails. The stream is the rooms
 * service's (its outbox creates it): an events service that starts first finds none, which is
 * no fault — said once, at info, until the stream is there; any other failure is a warning.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { Logger } from '@switchboard/service';

export class ReadFailures {
  readonly #log: Logger;
  readonly #reader: string;
  #waiting = false;

  /** `reader` names it in the messages (e.g. "member presence"). */
  constructor(log: Logger, reader: string) {
    this.#log = log;
    this.#reader = reader;
  }

  /** A read failed; it is retried. */
  failed(err: unknown): void {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      if (!this.#waiting) {
        this.#log.info(
          `${this.#reader}: waiting for the room events stream (the rooms service creates it)`,
        );
      }
      this.#waiting = true;
      return;
    }
    this.#log.warn({ err }, `${this.#reader}: reading room events failed; retrying`);
  }

  /** Reading works (again): a later absence of the stream is said again. */
  reading(): void {
    this.#waiting = false;
  }
}
