/**
 * A subscription made with `subscribe` (see BusLike.subscribe): each message is validated
 * against its schema and handed to its handler, which may answer it when it is a request;
 * an invalid message or a handler's error is logged and, for a request, answered. Its owner
 * (the Bus's Receiver) subscribes it on NATS, and learns of its end through its `close`
 * event.
 */
import { EventEmitter } from 'node:events';
import type { Msg } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  BusHeaders,
  ProtocolError,
  formatIssues,
  isProtocolError,
  type Validator,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import { deadlineOf, errorEnvelope, respond } from './replies.ts';
import { childTraceparent } from './trace.ts';

/** A message received by a `subscribe` handler. */
export interface Incoming {
  readonly subject: string;
  readonly traceparent: string;
  /** Whether the sender waits for a reply (a request, not a publish). */
  readonly isRequest: boolean;
  /** A request's absolute deadline (epoch ms): the caller's, else now + requestTimeoutMs. */
  readonly deadline: number;
  /** Answer a request with a bus envelope; ignored for a publish or after the first answer. */
  respond(result: { ok: true; data: unknown } | { ok: false; error: ProtocolError }): void;
}

export type SubscriptionHandler<S extends TSchema> = (
  payload: Static<S>,
  msg: Incoming,
) => void | Promise<void>;

/** A live subscription made with `subscribe`. */
export interface BusSubscription {
  readonly subject: string;
  /** Stop receiving; messages already on their way are still handled. */
  unsubscribe(): void;
}

export interface SubscriptionOptions {
  /** Its queue group, if any: each message goes to one subscriber of the group. */
  queue: string | undefined;
  /** Never shed (see BusLike.subscribe's `vital`). */
  vital: boolean;
  /** Deadline of a request whose caller named none. */
  requestTimeoutMs: number;
  log: Logger;
}

export interface SubscriptionEvents {
  /** Unsubscribed: its owner stops its NATS subscription (draining it). */
  close: [];
}

export class Subscription extends EventEmitter<SubscriptionEvents> implements BusSubscription {
  readonly subject: string;
  readonly queue: string | undefined;
  readonly vital: boolean;
  readonly #validator: Validator<TSchema>;
  readonly #handler: SubscriptionHandler<TSchema>;
  readonly #opts: SubscriptionOptions;
  #closed = false;

  constructor(
    subject: string,
    validator: Validator<TSchema>,
    handler: SubscriptionHandler<TSchema>,
    opts: SubscriptionOptions,
  ) {
    super();
    this.subject = subject;
    this.queue = opts.queue;
    this.vital = opts.vital;
    this.#validator = validator;
    this.#handler = handler;
    this.#opts = opts;
  }

  /** See BusSubscription; a function of its own, so it may be passed around unbound. */
  readonly unsubscribe = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  };

  /** Handle one message; never rejects (what goes wrong is logged, and answered if it can be). */
  async handle(msg: Msg): Promise<void> {
    const traceparent = childTraceparent(msg.headers?.get(BusHeaders.traceparent));
    const isRequest = msg.reply !== undefined && msg.reply !== '';
    let answered = false;
    const incoming: Incoming = {
      subject: msg.subject,
      traceparent,
      isRequest,
      deadline: deadlineOf(msg, this.#opts.requestTimeoutMs),
      respond: (result) => {
        if (!isRequest || answered) return;
        answered = true;
        respond(
          msg,
          this.#opts.log,
          result.ok ? { ok: true, data: result.data } : errorEnvelope(result.error),
        );
      },
    };
    let body: unknown;
    try {
      body = msg.json();
    } catch {
      this.#opts.log.warn({ subject: msg.subject }, 'message is not JSON; dropped');
      incoming.respond({ ok: false, error: new ProtocolError('JSON') });
      return;
    }
    const parsed = this.#validator.parse(body);
    if (!parsed.ok) {
      const detail = formatIssues(parsed.issues);
      this.#opts.log.warn(
        { subject: msg.subject, detail },
        'message does not match its schema; dropped',
      );
      incoming.respond({ ok: false, error: new ProtocolError('JSON_FIELD_INVALID', detail) });
      return;
    }
    try {
      await this.#handler(parsed.value, incoming);
    } catch (err) {
      if (isProtocolError(err)) {
        incoming.respond({ ok: false, error: err });
        return;
      }
      this.#opts.log.error({ err, subject: msg.subject }, 'message handler failed');
      incoming.respond({ ok: false, error: new ProtocolError('SYSTEM') });
    }
  }
}
