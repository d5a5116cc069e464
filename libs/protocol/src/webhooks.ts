/**
 * Webhooks: the durable room events (DURABLE_ROOM_EVENTS) POSTed by the events service to
 * the endpoints of WEBHOOK_URLS, signed with an API key's secret (Stripe-style).
 *
 * The body is `{id, event, createdAt, roomId, data}`: `id` the room event's id (the
 * idempotency key: a delivery repeated after a failure or a failover carries the same id and
 * the same body), `event` its name (`room.join`…), `createdAt` its commit time (`ts`, epoch
 * ms), `data` the event exactly as stored in the room-events stream. Every durable event
 * type is a webhook event type, with no code of its own: the schemas here are made from the
 * RoomEvents table.
 *
 * Headers: `switchboard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." +
 * rawBody)>` (several `v1=` while keys rotate), `switchboard-event-id` (= `id`) and
 * `switchboard-key` (the id of the API key that signed). Signing and verifying are in the
 * SDK, `@switchboard/client/webhooks` (they need HMAC), and in docs/webhook-verify.mjs.
 *
 * Events that fail WEBHOOK_MAX_ATTEMPTS times are parked in the JetStream stream
 * `webhookParkedStream(prefix)`, on `<prefix>.webhooks.parked.<endpoint hash>`, as
 * ParkedWebhook records.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { RoomId } from './client.ts';
import { jetStreamToken } from './bus.ts';
import { DURABLE_ROOM_EVENTS, RoomEvents, type DurableRoomEventName } from './events.ts';
import { validator, type Parsed } from './validate.ts';

/** The request headers of a webhook delivery (lower case, as Node presents them). */
export const WebhookHeaders = {
  /** `t=<unix seconds>,v1=<hex HMAC-SHA256>` (one `v1=` per signing secret). */
  signature: 'switchboard-signature',
  /** The room event's id, as in the body: de-duplicate on it. */
  eventId: 'switchboard-event-id',
  /** The API key id (API_KEYS) whose secret signed. */
  key: 'switchboard-key',
} as const;

/** How far a signature's timestamp may be from the receiver's clock by default, seconds. */
export const WEBHOOK_TOLERANCE_S = 300;

const Uuid = Type.String({
  pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
});

function bodyOf<E extends DurableRoomEventName>(event: E) {
  return Type.Object({
    /** The room event's id: the idempotency key. */
    id: Uuid,
    event: Type.Literal(event),
    /** The event's commit time (`ts`), epoch ms. */
    createdAt: Type.Integer({ minimum: 0 }),
    roomId: RoomId,
    /** The room event exactly as stored in the stream. */
    data: RoomEvents[event],
  });
}

type BodySchemas = { [E in DurableRoomEventName]: ReturnType<typeof bodyOf<E>> };

/** The body of each webhook event type, by event name. */
export const WebhookBodies = Object.fromEntries(
  DURABLE_ROOM_EVENTS.map((e) => [e, bodyOf(e)]),
) as BodySchemas;

/** A webhook body of any event type (one of WebhookBodies, told apart by `event`). */
export const WebhookBody: TSchema = Type.Union(
  DURABLE_ROOM_EVENTS.map((e): TSchema => WebhookBodies[e]),
);
export type WebhookBody = {
  [E in DurableRoomEventName]: Static<BodySchemas[E]>;
}[DurableRoomEventName];
export const webhookBody = validator(WebhookBody) as {
  readonly schema: TSchema;
  check(value: unknown): value is WebhookBody;
  parse(value: unknown): Parsed<WebhookBody>;
};

/** The durable event a room-events stream subject carries, or undefined. */
export function durableEventOfSubject(
  prefix: string,
  subject: string,
): DurableRoomEventName | undefined {
  if (!subject.startsWith(`${prefix}.`)) return undefined;
  const name = subject.slice(prefix.length + 1);
  return (DURABLE_ROOM_EVENTS as readonly string[]).includes(name)
    ? (name as DurableRoomEventName)
    : undefined;
}

/** The JSON body of a webhook for the stored event `raw` (its JSON text, embedded as is). */
export function webhookBodyJson(
  event: DurableRoomEventName,
  stored: { id: string; ts: number; roomId: string },
  raw: string,
): string {
  return `{"id":${JSON.stringify(stored.id)},"event":${JSON.stringify(event)},"createdAt":${JSON.stringify(stored.ts)},"roomId":${JSON.stringify(stored.roomId)},"data":${raw.trim()}}`;
}

/** An endpoint's hash: the first 16 hex digits of SHA-256 of its URL (never the URL). */
export const WebhookEndpointHash = Type.String({ pattern: '^[0-9a-f]{16}$' });

/** The durable consumer of one endpoint on the room-events stream. */
export const WEBHOOK_CONSUMER_PREFIX = 'webhook_';
export function webhookConsumer(endpointHash: string): string {
  return `${WEBHOOK_CONSUMER_PREFIX}${endpointHash}`;
}

/** The JetStream stream of parked webhook events (dots of the prefix as `_`). */
export function webhookParkedStream(prefix: string): string {
  return `${jetStreamToken(prefix)}_WEBHOOKS_PARKED`;
}

/** The subject of an endpoint's parked events (`<prefix>.webhooks.parked.<hash>`). */
export function webhookParkedSubject(prefix: string, endpointHash: string): string {
  return `${prefix}.webhooks.parked.${endpointHash}`;
}

/** What a parked event's record holds. */
export const ParkedWebhook = Type.Object({
  /** The endpoint's hash (its URL is never stored: it may hold credentials). */
  endpoint: WebhookEndpointHash,
  /** The event's sequence in the room-events stream. */
  streamSeq: Type.Integer({ minimum: 1 }),
  /** The event's subject in the room-events stream. */
  subject: Type.String({ maxLength: 512 }),
  /** The room event's id and room (absent when the stored event was not valid). */
  eventId: Type.Optional(Uuid),
  roomId: Type.Optional(RoomId),
  /**
   * The exact body that was POSTed (a replay sends it again), or, for a stored event that
   * is not valid, its raw text.
   */
  body: Type.String(),
  /** Why it was parked: the last attempt's error (an HTTP status, a timeout…). */
  error: Type.String({ maxLength: 1024 }),
  /** Attempts made (0: the stored event was not valid; never POSTed). */
  attempts: Type.Integer({ minimum: 0 }),
  /** When it was parked, epoch ms. */
  parkedAt: Type.Integer({ minimum: 0 }),
});
export type ParkedWebhook = Static<typeof ParkedWebhook>;
export const parkedWebhook = validator(ParkedWebhook);
