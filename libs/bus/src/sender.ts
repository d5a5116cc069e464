/**
 * What a Bus sends (its requesting side): requests with deadlines, cancellation, trace
 * context and the mapping of NATS's errors onto protocol error codes; publishes, one at a
 * time or a burst at once, and the flush that tells when the server has them. It sends on
 * the Bus's connection, which the Bus makes, watches and closes.
 */
import {
  errors as natsErrors,
  headers as natsHeaders,
  type Msg,
  type NatsConnection,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  BusHeaders,
  ProtocolError,
  busReplyEnvelope,
  formatIssues,
  isProtocolError,
  subjects,
  type BusReplyEnvelope,
  type ErrorName,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
  type Validator,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import type { BusMetrics } from './metrics.ts';
import { childTraceparent } from './trace.ts';

/**
 * A payload already encoded as JSON text, sent as it is: for a message assembled from parts
 * that were each encoded once (e.g. a batch whose items were measured as they came).
 */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function encode(payload: unknown): string {
  return payload instanceof JsonText ? payload.text : JSON.stringify(payload);
}

export interface RequestOptions {
  /** Deadline of this request (default: the bus's requestTimeoutMs). */
  timeoutMs?: number;
  /** Cancels the wait; the request fails with CANCELLED. */
  signal?: AbortSignal;
  /** The trace this request belongs to (a handler passes its own ctx.traceparent). */
  traceparent?: string;
  /** The error when nobody subscribes to the subject (default SERVICE_UNAVAILABLE). */
  noResponders?: ErrorName;
  /**
   * The instance an addressed method's request goes to (a media node's id); required for
   * those, refused for the others (see RpcMethod.addressed).
   */
  to?: string;
}

export interface SenderOptions {
  prefix: string;
  /** `<service>/<instanceId>`: the caller header of every message sent. */
  caller: string;
  /** Deadline of a request that names none. */
  requestTimeoutMs: number;
  log: Logger;
  metrics: Pick<BusMetrics, 'clientRequests' | 'clientDuration'> | undefined;
  /** The connection to send on: none before the first one is made, nor once the Bus closes. */
  connection: () => NatsConnection | undefined;
  /** Connected right now: a request fails at once while not (a publish is buffered). */
  connected: () => boolean;
}

export class Sender {
  readonly #opts: SenderOptions;
  readonly #log: Logger;

  constructor(opts: SenderOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** BusLike.request, counted by method and outcome in the bus metrics. */
  async request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts: RequestOptions = {},
  ): Promise<RpcReply<M>> {
    const label = `${method.service}.${method.method}`;
    const started = performance.now();
    let outcome: string = 'ok';
    try {
      return await this.#request(method, request, opts);
    } catch (err) {
      outcome = isProtocolError(err) ? err.errorName : 'SYSTEM';
      throw err;
    } finally {
      this.#opts.metrics?.clientRequests.inc({ method: label, outcome });
      this.#opts.metrics?.clientDuration.observe(
        { method: label },
        (performance.now() - started) / 1000,
      );
    }
  }

  async #request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts: RequestOptions,
  ): Promise<RpcReply<M>> {
    return (await this.#call(
      subjects.rpc(this.#opts.prefix, method, opts.to),
      opts.to === undefined ? method.service : `${method.service} ${opts.to}`,
      request,
      method.reply,
      opts,
    )) as RpcReply<M>;
  }

  /** BusLike.requestSubject. */
  async requestSubject<S extends TSchema>(
    subject: string,
    payload: unknown,
    reply: Validator<S>,
    opts: RequestOptions = {},
  ): Promise<Static<S>> {
    return await this.#call(subject, subject, payload, reply, opts);
  }

  async #call<S extends TSchema>(
    subject: string,
    peer: string,
    payload: unknown,
    reply: Validator<S>,
    opts: RequestOptions,
  ): Promise<Static<S>> {
    const timeout = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    if (opts.signal?.aborted === true) throw new ProtocolError('CANCELLED');
    const nc = this.#opts.connection();
    if (nc === undefined || !this.#opts.connected()) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    }
    const h = natsHeaders();
    h.set(BusHeaders.traceparent, childTraceparent(opts.traceparent));
    h.set(BusHeaders.deadline, String(Date.now() + timeout));
    h.set(BusHeaders.caller, this.#opts.caller);

    let msg: Msg;
    try {
      msg = await abortable(
        nc.request(subject, encode(payload), { timeout, headers: h }),
        opts.signal,
      );
    } catch (err) {
      if (
        opts.noResponders !== undefined &&
        err instanceof natsErrors.RequestError &&
        err.isNoResponders()
      ) {
        throw new ProtocolError(opts.noResponders, undefined, { cause: err });
      }
      throw this.#mapRequestError(err, subject);
    }

    let envelope: BusReplyEnvelope;
    try {
      const parsed = busReplyEnvelope.parse(msg.json());
      if (!parsed.ok) throw new Error(formatIssues(parsed.issues));
      envelope = parsed.value;
    } catch (err) {
      this.#log.error({ err, subject }, 'malformed reply');
      throw new ProtocolError('SYSTEM', `malformed reply from ${peer}`, { cause: err });
    }
    if (!envelope.ok) throw ProtocolError.fromCode(envelope.error.code, envelope.error.message);
    const data = reply.parse(envelope.data);
    if (!data.ok) {
      this.#log.error({ subject, issues: data.issues }, 'reply does not match its schema');
      throw new ProtocolError('SYSTEM', `invalid reply from ${peer}`);
    }
    return data.value;
  }

  #mapRequestError(err: unknown, subject: string): ProtocolError {
    if (isProtocolError(err)) return err;
    if (err instanceof natsErrors.TimeoutError)
      return new ProtocolError('TIMEOUT', subject, { cause: err });
    if (
      err instanceof natsErrors.PermissionViolationError ||
      (err instanceof natsErrors.RequestError &&
        err.cause instanceof natsErrors.PermissionViolationError)
    ) {
      // The server refused this identity the subject: a deployment's permissions are wrong.
      this.#log.error(
        { subject },
        'NATS permissions violation: this identity may not publish here',
      );
      return new ProtocolError('SYSTEM', `not permitted: ${subject}`, { cause: err });
    }
    if (err instanceof natsErrors.RequestError) {
      if (err.isNoResponders()) {
        return new ProtocolError('SERVICE_UNAVAILABLE', `no responders on ${subject}`, {
          cause: err,
        });
      }
      if (err.cause instanceof natsErrors.TimeoutError) {
        return new ProtocolError('TIMEOUT', subject, { cause: err });
      }
      return new ProtocolError('SERVICE_UNAVAILABLE', err.message, { cause: err });
    }
    if (
      err instanceof natsErrors.ClosedConnectionError ||
      err instanceof natsErrors.DrainingConnectionError ||
      err instanceof natsErrors.ConnectionError
    ) {
      return new ProtocolError('SERVICE_UNAVAILABLE', err.message, { cause: err });
    }
    this.#log.error({ err, subject }, 'request failed');
    return new ProtocolError('SYSTEM', undefined, { cause: err });
  }

  /** BusLike.publish. */
  publish(subject: string, payload: unknown, traceparent?: string): void {
    const nc = this.#open();
    const h = natsHeaders();
    h.set(BusHeaders.traceparent, childTraceparent(traceparent));
    h.set(BusHeaders.caller, this.#opts.caller);
    nc.publish(subject, JSON.stringify(payload), { headers: h });
  }

  /** BusLike.publishMany. */
  publishMany(subject: string, messages: readonly string[]): void {
    const nc = this.#open();
    const joined = messages.join('');
    const bytes = Buffer.from(joined, 'utf8');
    // Only ASCII (nearly always): each message's bytes are as many as its characters.
    const ascii = bytes.length === joined.length;
    let at = 0;
    for (const m of messages) {
      const n = ascii ? m.length : Buffer.byteLength(m, 'utf8');
      nc.publish(subject, bytes.subarray(at, at + n));
      at += n;
    }
  }

  /** BusLike.flush. */
  async flush(signal?: AbortSignal): Promise<void> {
    const nc = this.#open();
    const flushed = nc.flush();
    try {
      await abortable(flushed, signal);
    } catch (err) {
      if (isProtocolError(err) && err.errorName === 'CANCELLED') {
        // Given up on: its own outcome (the connection closing) is not the caller's.
        flushed.catch((e: unknown) => {
          this.#log.debug({ err: e }, 'a NATS flush given up on failed');
        });
        throw err;
      }
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'NATS flush failed', { cause: err });
    }
  }

  /** The connection to publish on (buffered while reconnecting); SERVICE_UNAVAILABLE if none. */
  #open(): NatsConnection {
    const nc = this.#opts.connection();
    if (nc === undefined) throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
    return nc;
  }
}

async function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await p;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        onAbort = () => {
          reject(new ProtocolError('CANCELLED'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}
