/**
 * One call, as its caller holds it: a writable side (`send`, `end`), a readable side (an
 * async iterator of responses) and the call's headers, trailers and status. Every way it ends
 * — a status from the server, a reset, the deadline, the caller's signal, a bad response, the
 * channel closing — settles all of these once.
 */
import {
  STREAM_WINDOW_BYTES,
  RpcStatusCodes,
  metadataFits,
  rpcMetadata,
  type RpcFrame,
  type RpcMetadata,
  type ServiceMethod,
  type RpcStatusName,
} from '@switchboard/protocol';
import { MessageAssembler, encodeMessage } from './assembler.ts';
import { RpcError } from './errors.ts';
import { MessageQueue } from './queue.ts';
import { ReceiveWindow } from './flow.ts';
import type { FrameWriter, SendWindow } from './writer.ts';

export interface CallOptions {
  /** Cancels the call (CANCELLED; the server's handler sees its signal abort). */
  signal?: AbortSignal;
  /** Deadline, from now: sent to the server, enforced here too (DEADLINE_EXCEEDED). */
  timeoutMs?: number;
  /** Request headers. */
  metadata?: RpcMetadata;
}

export interface RpcCallStatus {
  code: number;
  status: RpcStatusName;
  message: string;
}

/** What a call needs of its client. */
export interface CallHost {
  readonly writer: FrameWriter;
  release(id: number): void;
}

export class ClientCall<Req, Res> implements AsyncIterable<Res> {
  readonly id: number;
  readonly method: ServiceMethod;
  /** The response headers (empty if the call ended without any). Never rejects. */
  readonly headers: Promise<RpcMetadata>;
  /** The trailers (empty if the call ended locally). Never rejects. */
  readonly trailers: Promise<RpcMetadata>;
  /** How the call ended. Never rejects. */
  readonly status: Promise<RpcCallStatus>;
  readonly #host: CallHost;
  readonly #queue: MessageQueue<Res>;
  /** What this call may still send (the server acknowledges what its handler read). */
  readonly #window: SendWindow = { bytes: STREAM_WINDOW_BYTES };
  readonly #assembler = new MessageAssembler();
  readonly #signal: AbortSignal | undefined;
  #resolveHeaders!: (md: RpcMetadata) => void;
  #resolveTrailers!: (md: RpcMetadata) => void;
  #resolveStatus!: (s: RpcCallStatus) => void;
  #headersSeen = false;
  #received = 0;
  #halfClosed = false;
  #error: RpcError | undefined;
  #finished = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onAbort = (): void => {
    const reason: unknown = this.#signal?.reason;
    // AbortSignal.timeout() is a deadline too.
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    this.#fail(new RpcError(timedOut ? 'DEADLINE_EXCEEDED' : 'CANCELLED'), true);
  };

  constructor(host: CallHost, id: number, method: ServiceMethod, opts: CallOptions) {
    this.#host = host;
    this.id = id;
    this.method = method;
    this.#signal = opts.signal;
    // A unary or client-streaming call gets one response: nothing to acknowledge.
    const acks = new ReceiveWindow(id, host.writer, () => !this.#finished && !this.#single);
    this.#queue = new MessageQueue<Res>(STREAM_WINDOW_BYTES, (bytes) => {
      acks.took(bytes);
    });
    this.headers = new Promise((r) => (this.#resolveHeaders = r));
    this.trailers = new Promise((r) => (this.#resolveTrailers = r));
    this.status = new Promise((r) => (this.#resolveStatus = r));
  }

  /**
   * Send the `call` frame (the client does, once registered); `request`: the one request
   * message of a unary or server-streaming call, then end.
   */
  start(opts: CallOptions, request?: Uint8Array): void {
    const md = opts.metadata;
    if (md !== undefined && (!rpcMetadata.check(md) || !metadataFits(md))) {
      this.#fail(new RpcError('INVALID_ARGUMENT', 'invalid request metadata'), false);
      return;
    }
    if (opts.signal?.aborted === true) {
      this.#onAbort();
      return;
    }
    const timeoutMs =
      opts.timeoutMs === undefined ? undefined : Math.max(1, Math.ceil(opts.timeoutMs));
    if (timeoutMs !== undefined && !(timeoutMs < 2 ** 31)) {
      this.#fail(new RpcError('INVALID_ARGUMENT', 'timeoutMs out of range'), false);
      return;
    }
    const frame: RpcFrame = {
      id: this.id,
      type: 'call',
      method: this.method.path,
      ...(md === undefined ? {} : { metadata: md }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
    const writer = this.#host.writer;
    if (request !== undefined) {
      this.#halfClosed = true;
      const whole = { ...frame, msg: true, end: true };
      if (request.length <= writer.inlineRoom(whole)) {
        // The usual unary call: one data-channel message.
        this.#window.bytes -= request.length;
        writer.frame(whole, undefined, request);
      } else {
        writer.frame(frame);
        // A failure to send it ends the call (seen there), as any failure of the channel does.
        writer.message(this.id, request, this.#window).catch(() => undefined);
        writer.frame({ id: this.id, type: 'end' });
      }
    } else {
      writer.frame(frame);
    }
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.#fail(new RpcError('DEADLINE_EXCEEDED'), true);
      }, timeoutMs);
    }
    opts.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Whether the call has ended (a status, a reset, a local failure). */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Send one request message; resolves once it is on the channel (so a loop of awaited sends
   * follows the channel's pace). Rejects with the call's error once it has ended.
   */
  async send(message: Req): Promise<void> {
    if (this.#finished)
      throw this.#error ?? new RpcError('FAILED_PRECONDITION', 'the call is over');
    if (this.#halfClosed) throw new RpcError('FAILED_PRECONDITION', 'send after end');
    await this.#host.writer.message(this.id, encodeMessage(message), this.#window);
  }

  /** No more request messages (half-close); responses keep coming. */
  end(): void {
    if (this.#halfClosed || this.#finished) return;
    this.#halfClosed = true;
    this.#host.writer.frame({ id: this.id, type: 'end' });
  }

  /** Abandon the call: CANCELLED here, a reset to the server. */
  cancel(message?: string): void {
    this.#fail(new RpcError('CANCELLED', message), true);
  }

  /** The responses; ends after the last, or throws the call's RpcError. */
  [Symbol.asyncIterator](): AsyncIterator<Res> {
    return this.#queue.iterator(() => {
      // The reader stopped early: nobody wants the rest.
      if (!this.#finished) this.cancel('the caller stopped reading');
    });
  }

  /** The one response of a unary or client-streaming call (after the server's OK). */
  async response(): Promise<Res> {
    let response: { value: Res } | undefined;
    for await (const message of this) response = { value: message };
    if (response === undefined) throw new RpcError('INTERNAL', 'no response message');
    return response.value;
  }

  // ------------------------------------------------------------- from the client's reader

  frame(frame: RpcFrame, payload: Uint8Array): void {
    if (this.#finished) return;
    switch (frame.type) {
      case 'headers':
        if (this.#headersSeen) {
          this.protocolError('headers twice');
          return;
        }
        this.#headersSeen = true;
        this.#resolveHeaders(frame.metadata ?? {});
        return;
      case 'msg':
        this.#message(payload, frame.more === true);
        return;
      case 'status': {
        const err =
          frame.code === RpcStatusCodes.OK.code
            ? undefined
            : RpcError.fromCode(frame.code, frame.message, frame.metadata);
        const md = frame.metadata ?? {};
        if (err === undefined && this.#single && this.#received !== 1) {
          this.#fail(
            new RpcError(
              'INTERNAL',
              `${String(this.#received)} responses to a ${this.method.kind} call`,
              md,
            ),
            false,
          );
          return;
        }
        this.#finish(err, md, frame.message);
        this.#host.writer.discard(
          this.id,
          err ?? new RpcError('FAILED_PRECONDITION', 'the call is over'),
        );
        return;
      }
      case 'window':
        this.#window.bytes += frame.bytes;
        this.#host.writer.resume(this.id);
        return;
      case 'reset':
        this.#fail(RpcError.fromCode(frame.code, 'the server reset the stream'), false);
        this.#host.writer.discard(this.id, this.#error ?? new RpcError('CANCELLED'));
        return;
      case 'call':
      case 'end':
        this.protocolError(`a ${frame.type} frame from the server`);
        return;
    }
  }

  /** A frame of this stream the client could not read: the call fails, the server is told. */
  protocolError(reason: string): void {
    this.#fail(new RpcError('INTERNAL', `bad frame from the server: ${reason}`), true);
  }

  /** The channel closed or the client was closed: no frame can be sent any more. */
  abandon(err: RpcError): void {
    this.#fail(err, false);
  }

  get #single(): boolean {
    return this.method.kind === 'unary' || this.method.kind === 'clientStream';
  }

  #message(payload: Uint8Array, more: boolean): void {
    const got = this.#assembler.add(payload, more);
    switch (got.kind) {
      case 'partial':
        return;
      case 'oversize':
        this.#fail(
          new RpcError('RESOURCE_EXHAUSTED', 'a response exceeds the message size limit'),
          true,
        );
        return;
      case 'invalid':
        this.protocolError(got.reason);
        return;
      case 'message': {
        const parsed = this.method.responses.parse(got.value);
        if (!parsed.ok) {
          this.#fail(new RpcError('INTERNAL', 'the response failed its schema'), true);
          return;
        }
        if (++this.#received > 1 && this.#single) {
          this.protocolError(`a second response to a ${this.method.kind} call`);
          return;
        }
        if (!this.#headersSeen) {
          this.#headersSeen = true;
          this.#resolveHeaders({});
        }
        if (!this.#queue.push(parsed.value as Res, got.bytes)) {
          this.#fail(
            new RpcError('RESOURCE_EXHAUSTED', 'responses are not read fast enough'),
            true,
          );
        }
        return;
      }
    }
  }

  /** End locally with `err`; `reset` tells the server (unless the channel is gone). */
  #fail(err: RpcError, reset: boolean): void {
    if (this.#finished) return;
    this.#finish(err, err.metadata, err.message);
    this.#host.writer.discard(this.id, err);
    if (reset) this.#host.writer.frame({ id: this.id, type: 'reset', code: err.code });
  }

  #finish(err: RpcError | undefined, trailers: RpcMetadata, message: string | undefined): void {
    this.#finished = true;
    this.#error = err;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#headersSeen = true;
    this.#resolveHeaders({});
    this.#resolveTrailers(trailers);
    const status: RpcStatusName = err?.status ?? 'OK';
    this.#resolveStatus({
      code: RpcStatusCodes[status].code,
      status,
      message: message ?? RpcStatusCodes[status].message,
    });
    this.#queue.close(err);
    this.#host.release(this.id);
  }
}
