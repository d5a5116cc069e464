/**
 * Parked webhook events: an event an endpoint failed WEBHOOK_MAX_ATTEMPTS times (or a stored
 * event that is not valid, which no retry can fix) is published to the JetStream stream
 * `<P>_WEBHOOKS_PARKED` on `<p>.webhooks.parked.<endpoint hash>` — file storage, kept 7 days
 * and at most 1 GiB (the oldest go first) — before it is acked, so nothing is dropped
 * unseen. `webhooks-admin.ts` lists and replays them.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  webhookParkedStream,
  webhookParkedSubject,
  type ParkedWebhook,
} from '@switchboard/protocol';

const NS_PER_MS = 1_000_000;
export const PARKED_MAX_AGE_MS = 7 * 86_400_000;
export const PARKED_MAX_BYTES = 1024 ** 3;
const TIMEOUT_MS = 5000;

export class ParkingLot {
  readonly #prefix: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  get stream(): string {
    return webhookParkedStream(this.#prefix);
  }

  /** Create the stream when it does not exist (an existing one is kept as operators set it). */
  async ensureStream(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: TIMEOUT_MS });
    try {
      await jsm.streams.info(this.stream);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await jsm.streams.add({
      name: this.stream,
      subjects: [`${this.#prefix}.webhooks.parked.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: PARKED_MAX_AGE_MS * NS_PER_MS,
      max_bytes: PARKED_MAX_BYTES,
      duplicate_window: 120_000 * NS_PER_MS,
    });
  }

  /** Store `record`; resolves once the stream has it (a retry is stored once). */
  async park(nc: NatsConnection, record: ParkedWebhook): Promise<void> {
    await jetstream(nc, { timeout: TIMEOUT_MS }).publish(
      webhookParkedSubject(this.#prefix, record.endpoint),
      JSON.stringify(record),
      { msgID: `${record.endpoint}-${String(record.streamSeq)}` },
    );
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}
