/**
 * One call being served: reads the request message(s), runs the handler, writes its
 * response(s), headers and trailers, and ends the stream with a status — or stops at once
 * when the client resets it, the deadline passes or the channel closes (the handler's signal
 * aborts then).
 */
import {
  STREAM_WINDOW_BYTES,
  RpcStatusCodes,
  metadataFits,
  rpcMetadata,
  type RpcCallFrame,
  type RpcFrame,
  type RpcMetadata,
  type ServiceMethod,
} from '@switchboard/protocol';
import { MessageAssembler, encodeMessage } from './assembler.ts';
import { RpcError } from './errors.ts';
import type { AnyHandler, RpcContext } from './handlers.ts';
import { MessageQueue } from './queue.ts';
import { ReceiveWindow } from './flow.ts';
import type { FrameWriter, SendWindow } from './writer.ts';

export interface ServerCallHost {
  readonly writer: FrameWriter;
  release(id: number): void;
  /** A handler's error that was not an RpcError (the client only sees UNKNOWN). */
  onError(err: unknown, method: string): void;
}

export class ServerCall {
  readonly id: number;
  readonly #host: ServerCallHost;
  readonly #method: ServiceMethod;
  readonly #handler: AnyHandler;
  readonly #requestHeaders: RpcMetadata;
  readonly #deadline: number | undefined;
  readonly #queue: MessageQueue<unknown>;
  /** What this call may still send (the client acknowledges what it read). */
  readonly #window: SendWindow = { bytes: STREAM_WINDOW_BYTES };
  readonly #assembler = new MessageAssembler();
  readonly #ac = new AbortController();
  readonly #headers: RpcMetadata = {};
  readonly #trailers: RpcMetadata = {};
  #headersSent = false;
  #received = 0;
  #halfClosed = false;
  #finished = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    host: ServerCallHost,
    frame: RpcCallFrame,
    method: ServiceMethod,
    handler: AnyHandler,
  ) {
    this.#host = host;
    this.id = frame.id;
    this.#method = method;
    this.#handler = handler;
    this.#requestHeaders = frame.metadata ?? {};
    // Nothing to acknowledge once the client can send no more (one request, or half-closed).
    const acks = new ReceiveWindow(
      frame.id,
      host.writer,
      () => !this.#finished && !this.#halfClosed && !this.#singleRequest,
    );
    this.#queue = new MessageQueue<unknown>(STREAM_WINDOW_BYTES, (bytes) => {
      acks.took(bytes);
    });
    this.#deadline = frame.timeoutMs === undefined ? undefined : Date.now() + frame.timeoutMs;
    if (frame.timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.#end(new RpcError('DEADLINE_EXCEEDED'));
      }, frame.timeoutMs);
    }
  }

  start(): void {
    this.#run().catch((err: unknown) => {
      // #run handles the handler's errors; this would be the runtime's own.
      this.#host.onError(err, this.#method.path);
      this.#end(new RpcError('INTERNAL'));
    });
  }

  frame(frame: RpcFrame, payload: Uint8Array): void {
    if (this.#finished) return;
    switch (frame.type) {
      case 'msg':
        this.#message(payload, frame.more === true);
        return;
      case 'end':
        this.#halfClosed = true;
        this.#queue.close();
        return;
      case 'reset':
        this.abandon(RpcError.fromCode(frame.code, 'the client reset the stream'));
        return;
      case 'window':
        this.#window.bytes += frame.bytes;
        this.#host.writer.resume(this.id);
        return;
      case 'call':
        this.protocolError('the stream id is in use');
        return;
      case 'headers':
      case 'status':
        this.protocolError(`a ${frame.type} frame from the client`);
        return;
    }
  }

  /** A frame of this stream that breaks the protocol: the stream ends INVALID_ARGUMENT. */
  protocolError(reason: string): void {
    this.#end(new RpcError('INVALID_ARGUMENT', `bad frame: ${reason}`));
  }

  /** End now with `err` as the status (the handler's signal aborts). */
  fail(err: RpcError): void {
    this.#end(err);
  }

  /** End without a word to the client (it reset the stream, or the channel is gone). */
  abandon(err: RpcError): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#host.writer.discard(this.id, err);
    this.#close(err);
  }

  get #singleRequest(): boolean {
    return this.#method.kind === 'unary' || this.#method.kind === 'serverStream';
  }

  #message(payload: Uint8Array, more: boolean): void {
    if (this.#halfClosed) {
      this.protocolError('a message after end');
      return;
    }
    const got = this.#assembler.add(payload, more);
    switch (got.kind) {
      case 'partial':
        return;
      case 'oversize':
        this.#end(new RpcError('RESOURCE_EXHAUSTED', 'a request exceeds the message size limit'));
        return;
      case 'invalid':
        this.#end(new RpcError('INVALID_ARGUMENT', got.reason));
        return;
      case 'message': {
        if (++this.#received > 1 && this.#singleRequest) {
          this.protocolError(`a second request message to a ${this.#method.kind} call`);
          return;
        }
        const parsed = this.#method.requests.parse(got.value);
        if (!parsed.ok) {
          const detail = parsed.issues
            .slice(0, 5)
            .map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`)
            .join('; ');
          this.#end(new RpcError('INVALID_ARGUMENT', `invalid request: ${detail}`.slice(0, 1024)));
          return;
        }
        if (!this.#queue.push(parsed.value, got.bytes)) {
          this.#end(new RpcError('RESOURCE_EXHAUSTED', 'requests are not read fast enough'));
        }
        return;
      }
    }
  }

  async #run(): Promise<void> {
    const ctx = this.#context();
    try {
      let input: unknown;
      if (this.#singleRequest) {
        const first = await this.#queue.next();
        if (first.done === true) throw new RpcError('INVALID_ARGUMENT', 'no request message');
        input = first.value;
      } else {
        input = this.#queue.iterator(() => {
          // The handler stopped reading: later requests are dropped (the queue is closed).
          this.#queue.close();
        });
      }
      const result = this.#handler(input, ctx);
      if (this.#method.kind === 'unary' || this.#method.kind === 'clientStream') {
        const response = await result;
        if (this.#finished) return;
        await this.#send(response);
      } else {
        for await (const response of result as AsyncIterable<unknown>) {
          if (this.#finished) return;
          await this.#send(response);
        }
      }
      this.#end(undefined);
    } catch (err) {
      // Already over (reset, deadline, channel): what the handler throws then is its reaction.
      if (this.#finished) return;
      if (err instanceof RpcError) {
        this.#end(err);
      } else {
        this.#host.onError(err, this.#method.path);
        this.#end(new RpcError('UNKNOWN', 'the handler failed'));
      }
    }
  }

  async #send(response: unknown): Promise<void> {
    const bytes = encodeMessage(response);
    // Empty headers go unsaid: the first message implies them.
    if (Object.keys(this.#headers).length > 0) this.#sendHeaders();
    else this.#headersSent = true;
    await this.#host.writer.message(this.id, bytes, this.#window);
  }

  #sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    const md = this.#headers;
    this.#host.writer.frame({
      id: this.id,
      type: 'headers',
      ...(Object.keys(md).length === 0 ? {} : { metadata: md }),
    });
  }

  /** Send the status (OK when `err` is undefined) and end the stream. */
  #end(err: RpcError | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    const writer = this.#host.writer;
    // An error ends the stream now: what was queued and not sent is moot.
    if (err !== undefined) writer.discard(this.id, err);
    if (!this.#headersSent && Object.keys(this.#headers).length > 0) this.#sendHeaders();
    const trailers = { ...this.#trailers, ...err?.metadata };
    const fits = rpcMetadata.check(trailers) && metadataFits(trailers);
    writer.frame({
      id: this.id,
      type: 'status',
      code: err?.code ?? RpcStatusCodes.OK.code,
      ...(err === undefined ? {} : { message: err.message.slice(0, 1024) }),
      ...(!fits || Object.keys(trailers).length === 0 ? {} : { metadata: trailers }),
    });
    this.#close(err ?? new RpcError('CANCELLED', 'the call is over'));
  }

  #close(err: RpcError): void {
    clearTimeout(this.#timer);
    this.#queue.close(err);
    this.#ac.abort(err);
    this.#host.release(this.id);
  }

  #context(): RpcContext {
    const check = (md: RpcMetadata): void => {
      if (!rpcMetadata.check(md)) throw new RpcError('INTERNAL', 'invalid response metadata');
    };
    const headers = this.#headers;
    const trailers = this.#trailers;
    return {
      method: this.#method.path,
      signal: this.#ac.signal,
      metadata: this.#requestHeaders,
      deadline: this.#deadline,
      setHeader: (md) => {
        check(md);
        if (this.#headersSent) throw new RpcError('INTERNAL', 'headers already sent');
        Object.assign(headers, md);
        if (!metadataFits(headers)) throw new RpcError('INTERNAL', 'response headers too large');
      },
      sendHeader: (md = {}) => {
        check(md);
        if (this.#headersSent) throw new RpcError('INTERNAL', 'headers already sent');
        Object.assign(headers, md);
        if (!metadataFits(headers)) throw new RpcError('INTERNAL', 'response headers too large');
        if (!this.#finished) this.#sendHeaders();
      },
      setTrailer: (md) => {
        check(md);
        Object.assign(trailers, md);
        if (!metadataFits(trailers)) throw new RpcError('INTERNAL', 'trailers too large');
      },
    };
  }
}
