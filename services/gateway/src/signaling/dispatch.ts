/**
 * A connection's frames from its client, read and answered: the rate limit, the frame's
 * JSON and envelope, a reply to one of the server's requests (`sid`) handed to them, a
 * request run by its handler (actions.ts) while fewer than `maxInflight` are and answered
 * (`<action>R`, echoing `id` when the client sent one), a notification handed over and
 * answered only when refused.
 *
 * Bad input never escapes this object: a frame that is not JSON, has wrong or missing
 * fields, names an unknown action or comes too fast is answered with its error code; a
 * binary frame or a flood closes the socket with a close code and a reason.
 */
import {
  ClientActions,
  CloseCodes,
  ProtocolError,
  clientFrame,
  invalidPayload,
  isMediaAction,
  isProtocolError,
  replyError,
  replyOk,
  type ClientAction,
  type ErrorName,
  type MediaAction,
  type ReplyFrame,
  type RequestId,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import {
  UNKNOWN_FRAME_ACTION,
  frameText,
  isActionName,
  isRecord,
  metricAction,
  requestIdOf,
} from './frames.ts';
import type { SignalingMetrics } from './metrics.ts';
import { RateLimiter } from './rate-limit.ts';

/** What a client's valid frames ask of its connection (actions.ts). */
export interface Handlers {
  /** Run a request: its reply's `d`, or why it failed (a ProtocolError; anything else is SYSTEM). */
  run(
    action: ClientAction | MediaAction,
    data: unknown,
    id: RequestId | undefined,
  ): Promise<unknown>;
  /** Take a notification (no reply); throws why when it is refused. */
  notify(kind: 'eventCpu' | 'eventFreeze', data: unknown): void;
}

export interface DispatchOptions {
  limits: { ratePerS: number; burst: number; maxInflight: number };
  metrics: Pick<SignalingMetrics, 'frames' | 'rejected' | 'requests' | 'duration'>;
  log: Logger;
  handlers: Handlers;
  /** Where the client's replies to the server's requests go (server-calls.ts). */
  replies: { reply(raw: unknown): void };
  /** Write a reply to the client. */
  send: (frame: ReplyFrame) => void;
  /** Close the socket (a binary frame, a flood). */
  close: (code: number, reason: string) => void;
  /** Whether a join, reconnect or sign-in is in progress. */
  joining: () => boolean;
  /** The reply of the request that began it is out: write the events held meanwhile. */
  release: () => void;
}

export class Dispatch {
  readonly #o: DispatchOptions;
  readonly #handlers: Handlers;
  readonly #limiter: RateLimiter;
  #inflight = 0;

  constructor(opts: DispatchOptions) {
    this.#o = opts;
    this.#handlers = opts.handlers;
    this.#limiter = new RateLimiter(opts.limits.ratePerS, opts.limits.burst);
  }

  /**
   * A frame from the client. `fresh`: the connection has not begun a join, reconnect or
   * sign-in (a request may begin one now).
   */
  frame(data: unknown, isBinary: boolean, fresh: boolean): void {
    this.#o.metrics.frames.inc();
    if (isBinary) {
      this.#o.metrics.rejected.inc({ reason: 'binary' });
      this.#o.close(CloseCodes.unsupportedData, 'binary frames are not supported');
      return;
    }
    // The limit comes before any parsing: garbage floods are floods too.
    const limit = this.#limiter.take();
    if (limit === 'flood') {
      this.#o.metrics.rejected.inc({ reason: 'flood' });
      this.#o.close(CloseCodes.policyViolation, 'rate limit exceeded');
      return;
    }
    const text = frameText(data);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.#reject(UNKNOWN_FRAME_ACTION, limit === 'ok' ? 'JSON' : 'RATE_LIMITED', undefined);
      return;
    }
    if (isRecord(raw) && Object.hasOwn(raw, 'sid')) {
      // A reply to one of the server's requests (client requests carry `id`, never `sid`).
      this.#o.replies.reply(raw);
      return;
    }
    const parsed = clientFrame.parse(raw);
    if (!parsed.ok) {
      const a = isRecord(raw) && isActionName(raw['a']) ? raw['a'] : UNKNOWN_FRAME_ACTION;
      const id = isRecord(raw) ? requestIdOf(raw['id']) : undefined;
      this.#reject(
        a,
        limit === 'ok' ? invalidPayload(parsed.issues).errorName : 'RATE_LIMITED',
        id,
      );
      return;
    }
    const frame = parsed.value;
    if (limit === 'refused') {
      this.#reject(frame.a, 'RATE_LIMITED', frame.id);
      return;
    }

    if (Object.hasOwn(ClientActions, frame.a)) {
      this.#request(frame.a as ClientAction, frame.d, frame.id, fresh);
    } else if (isMediaAction(frame.a)) {
      this.#request(frame.a, frame.d, frame.id, fresh);
    } else if (frame.a === 'eventCpu' || frame.a === 'eventFreeze') {
      this.#notification(frame.a, frame.d, frame.id);
    } else {
      this.#reject(frame.a, 'UNKNOWN_ACTION', frame.id);
    }
  }

  #request(
    action: ClientAction | MediaAction,
    data: unknown,
    id: RequestId | undefined,
    fresh: boolean,
  ): void {
    if (this.#inflight >= this.#o.limits.maxInflight) {
      this.#reject(action, 'RATE_LIMITED', id);
      return;
    }
    this.#inflight += 1;
    const started = performance.now();
    const run = this.#handlers.run(action, data, id);
    // run is synchronous up to its first await, so this tells whether this very request
    // started a join/reconnect (and must release the events held meanwhile).
    const began = fresh && this.#o.joining();
    this.#answer(action, id, run, started, began).catch((err: unknown) => {
      this.#o.log.error({ err, action }, 'answering a request failed');
    });
  }

  /**
   * Reply to a request once it ran, and count it; then release what a join held meanwhile.
   * One async function, not a chain of promises: every relay comes through here.
   */
  async #answer(
    action: ClientAction | MediaAction,
    id: RequestId | undefined,
    run: Promise<unknown>,
    started: number,
    began: boolean,
  ): Promise<void> {
    try {
      let result: unknown;
      let error: ProtocolError | undefined;
      try {
        result = await run;
      } catch (err) {
        error = this.#protocolError(err, action);
      }
      this.#o.send(
        error === undefined ? replyOk(action, result, id) : replyError(action, error.code, id),
      );
      this.#o.metrics.requests.inc({ action, outcome: error?.errorName ?? 'ok' });
      this.#o.metrics.duration.observe({ action }, (performance.now() - started) / 1000);
    } finally {
      this.#inflight -= 1;
      // A join's reply is out: write what arrived meanwhile, in order.
      if (began) this.#o.release();
    }
  }

  #notification(kind: 'eventCpu' | 'eventFreeze', data: unknown, id: RequestId | undefined): void {
    try {
      this.#handlers.notify(kind, data);
      this.#o.metrics.requests.inc({ action: kind, outcome: 'ok' });
    } catch (err) {
      this.#reject(kind, this.#protocolError(err, kind).errorName, id);
    }
  }

  #protocolError(err: unknown, action: string): ProtocolError {
    if (isProtocolError(err)) {
      if (err.errorName === 'SYSTEM') this.#o.log.warn({ err, action }, 'request failed');
      // Why a token was refused (never the token itself), for whoever debugs a client.
      if (err.errorName === 'AUTH_FAILED')
        this.#o.log.info({ reason: err.message }, 'join refused');
      return err;
    }
    this.#o.log.error({ err, action }, 'request failed unexpectedly');
    return new ProtocolError('SYSTEM');
  }

  #reject(action: string, name: ErrorName, id: RequestId | undefined): void {
    const e = new ProtocolError(name);
    this.#o.metrics.requests.inc({ action: metricAction(action), outcome: e.errorName });
    this.#o.send(replyError(action, e.code, id));
  }
}
