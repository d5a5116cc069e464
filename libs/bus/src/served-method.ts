/**
 * A method this instance answers (see BusLike.serve): each request is checked against its
 * deadline and the method's schema, handed to the handler with a signal that fires at the
 * caller's deadline, and answered — the reply, or what the handler threw as a protocol
 * error — unless the caller has given up already. Counted by method and outcome.
 */
import type { Msg } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  BusHeaders,
  ProtocolError,
  invalidPayload,
  isProtocolError,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { BusMetrics } from './metrics.ts';
import { deadlineOf, errorEnvelope, respond } from './replies.ts';
import { childTraceparent, traceIdOf } from './trace.ts';

export interface HandlerContext {
  /** Fires when the caller's deadline passes: stop work, the reply will not be read. */
  readonly signal: AbortSignal;
  /** Absolute deadline, epoch ms. */
  readonly deadline: number;
  readonly traceparent: string;
  /** `<service>/<instanceId>` of the caller, when it said. */
  readonly caller: string | undefined;
  readonly log: Logger;
}

export type Handler<M extends RpcMethod> = (
  request: RpcRequest<M>,
  ctx: HandlerContext,
) => Promise<RpcReply<M>>;

export interface ServedMethodOptions {
  /** The subject it is answered on. */
  subject: string;
  /** Its queue group; none: answered by this instance alone. */
  queue: string | undefined;
  /** Deadline of a request whose caller named none. */
  requestTimeoutMs: number;
  log: Logger;
  metrics: Pick<BusMetrics, 'served' | 'serveDuration'> | undefined;
}

export class ServedMethod {
  readonly subject: string;
  readonly queue: string | undefined;
  /** Never vital: shed as any message is when the bus has too much in hand. */
  readonly vital = false;
  readonly #method: RpcMethod;
  readonly #handler: Handler<RpcMethod>;
  readonly #opts: ServedMethodOptions;

  constructor(method: RpcMethod, handler: Handler<RpcMethod>, opts: ServedMethodOptions) {
    this.subject = opts.subject;
    this.queue = opts.queue;
    this.#method = method;
    this.#handler = handler;
    this.#opts = opts;
  }

  /** Answer one request; never rejects (what goes wrong is answered and logged). */
  async handle(msg: Msg): Promise<void> {
    const label = `${this.#method.service}.${this.#method.method}`;
    const started = performance.now();
    let outcome = 'ok';
    try {
      outcome = await this.#process(msg);
    } catch (err) {
      // #process answers every request itself; reaching here is a bug worth a loud log.
      outcome = 'SYSTEM';
      this.#opts.log.error({ err, subject: this.subject }, 'request handling failed');
    } finally {
      this.#opts.metrics?.served.inc({ method: label, outcome });
      this.#opts.metrics?.serveDuration.observe(
        { method: label },
        (performance.now() - started) / 1000,
      );
    }
  }

  async #process(msg: Msg): Promise<string> {
    const traceparent = childTraceparent(msg.headers?.get(BusHeaders.traceparent));
    const callerHeader = msg.headers?.get(BusHeaders.caller);
    const caller = callerHeader === undefined || callerHeader === '' ? undefined : callerHeader;
    const log = lazyChild(this.#opts.log, {
      subject: this.subject,
      traceId: traceIdOf(traceparent),
      ...(caller === undefined ? {} : { caller }),
    });
    if (msg.reply === undefined || msg.reply === '') {
      log.warn('request without a reply subject; ignored');
      return 'no_reply_subject';
    }
    const deadline = deadlineOf(msg, this.#opts.requestTimeoutMs);
    if (Date.now() >= deadline) {
      // The caller has given up already; doing the work would only waste it.
      log.warn({ lateMs: Date.now() - deadline }, 'request arrived after its deadline; skipped');
      return 'expired';
    }

    const fail = (err: ProtocolError): string => {
      respond(msg, log, errorEnvelope(err));
      return err.errorName;
    };

    let body: unknown;
    try {
      body = msg.json();
    } catch {
      return fail(new ProtocolError('JSON', 'request payload is not JSON'));
    }
    const parsed = this.#method.request.parse(body);
    if (!parsed.ok) return fail(invalidPayload(parsed.issues));

    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new ProtocolError('TIMEOUT'));
    }, deadline - Date.now());
    try {
      const data = await this.#handler(parsed.value, {
        signal: ac.signal,
        deadline,
        traceparent,
        caller,
        log,
      });
      // Finished after the deadline: the caller has given up (or is about to); a late
      // success must not be mistaken for one in time.
      if (ac.signal.aborted) {
        return fail(new ProtocolError('TIMEOUT', 'the handler finished after the deadline'));
      }
      respond(msg, log, { ok: true, data });
      return 'ok';
    } catch (err) {
      if (isProtocolError(err)) return fail(err);
      log.error({ err }, 'handler failed');
      return fail(new ProtocolError('SYSTEM'));
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * `parent.child(bindings)`, made when it is first used: most requests log nothing, and a
 * child logger costs its bindings' redaction (some 50 µs a request in the rooms service's
 * profile, on every join and leave).
 */
function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy(parent, {
    get(_target, prop) {
      child ??= parent.child(bindings);
      const value: unknown = Reflect.get(child, prop, child);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(child)
        : value;
    },
  });
}
