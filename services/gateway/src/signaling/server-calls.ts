/**
 * A connection's server-to-client requests (a host's calls, the server API's): each is
 * written to the client with a `sid` and waits for the client's reply — validated against
 * the method's schema — or its deadline, after which the client is told it may stop
 * (`eventRequestCancelled`). At most MAX_PENDING_CALLS wait at once; when the connection
 * closes, those waiting are cancelled.
 */
import {
  ProtocolError,
  clientReplyFrame,
  invalidPayload,
  isProtocolError,
  serverRequestData,
  serverRequestReply,
  type EventFrameMessage,
  type ServerRequest,
  type ServerRequestFrame,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { isRecord } from './frames.ts';
import type { SignalingMetrics } from './metrics.ts';

/** Server requests one connection may have waiting for their reply at once. */
const MAX_PENDING_CALLS = 16;

interface PendingCall {
  method: ServerRequest;
  resolve(reply: unknown): void;
  reject(err: ProtocolError): void;
  timer: NodeJS.Timeout;
}

export interface ServerCallsOptions {
  /** Write a frame to the client. */
  send: (frame: ServerRequestFrame | EventFrameMessage) => void;
  metrics: Pick<SignalingMetrics, 'calls' | 'callDuration'>;
  log: Logger;
}

export class ServerCalls {
  readonly #calls = new Map<number, PendingCall>();
  #nextSid = 1;
  readonly #send: ServerCallsOptions['send'];
  readonly #metrics: ServerCallsOptions['metrics'];
  readonly #log: Logger;

  constructor(opts: ServerCallsOptions) {
    this.#send = opts.send;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
  }

  /**
   * Send `method` with `data` to the client and wait for its reply until `deadline` (epoch
   * ms); rejects with a ProtocolError (the client's own code, TIMEOUT, RATE_LIMITED, or
   * JSON_FIELD_INVALID for data or a reply that does not match the method's schema).
   */
  async call(method: ServerRequest, data: unknown, deadline: number): Promise<unknown> {
    const parsed = serverRequestData[method].parse(data);
    if (!parsed.ok) throw invalidPayload(parsed.issues);
    if (this.#calls.size >= MAX_PENDING_CALLS) {
      throw new ProtocolError('RATE_LIMITED', 'too many server requests waiting for this client');
    }
    const timeoutMs = deadline - Date.now();
    if (timeoutMs <= 0) throw new ProtocolError('TIMEOUT');
    const sid = this.#nextSid++;
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(sid);
        // The caller has given up: the client may stop working on it.
        this.#send({ a: 'eventRequestCancelled', d: { sid } });
        reject(new ProtocolError('TIMEOUT', `the client did not answer ${method} in time`));
      }, timeoutMs);
      this.#calls.set(sid, { method, resolve, reject, timer });
    });
    this.#send({ a: method, d: parsed.value, sid, timeoutMs });
    const started = performance.now();
    try {
      const result = await reply;
      this.#metrics.calls.inc({ method, outcome: 'ok' });
      return result;
    } catch (err) {
      this.#metrics.calls.inc({
        method,
        outcome: isProtocolError(err) ? err.errorName : 'SYSTEM',
      });
      throw err;
    } finally {
      this.#metrics.callDuration.observe({ method }, (performance.now() - started) / 1000);
    }
  }

  /** The client answered a server request (a frame with `sid`). */
  reply(raw: unknown): void {
    const parsed = clientReplyFrame.parse(raw);
    if (!parsed.ok) {
      const sid = isRecord(raw) && typeof raw['sid'] === 'number' ? raw['sid'] : undefined;
      const call = sid === undefined ? undefined : this.#settle(sid);
      this.#log.info({ sid, issues: parsed.issues }, 'malformed reply to a server request');
      call?.reject(invalidPayload(parsed.issues));
      return;
    }
    const frame = parsed.value;
    const call = this.#settle(frame.sid);
    if (call === undefined) {
      // Answered after its deadline (the caller was told TIMEOUT), or never asked.
      this.#log.debug({ sid: frame.sid }, 'reply to no pending server request; ignored');
      return;
    }
    if (frame.a !== `${call.method}R`) {
      call.reject(
        new ProtocolError(
          'JSON_FIELD_INVALID',
          `reply ${frame.a} to ${call.method} (sid ${String(frame.sid)})`,
        ),
      );
      return;
    }
    if (!frame.s) {
      call.reject(ProtocolError.fromCode(frame.e));
      return;
    }
    const reply = serverRequestReply[call.method].parse(frame.d);
    if (!reply.ok) {
      call.reject(invalidPayload(reply.issues));
      return;
    }
    call.resolve(reply.value);
  }

  /** The connection closed: every request waiting is cancelled. */
  cancelAll(): void {
    for (const sid of [...this.#calls.keys()]) {
      this.#settle(sid)?.reject(new ProtocolError('CANCELLED', 'the connection closed'));
    }
  }

  #settle(sid: number): PendingCall | undefined {
    const call = this.#calls.get(sid);
    if (call === undefined) return undefined;
    this.#calls.delete(sid);
    clearTimeout(call.timer);
    return call;
  }
}
