/**
 * The calling side of one data channel. Calls are multiplexed on it as streams 1, 3, 5, …;
 * the server bounds how many are open at once (MAX_STREAMS_PER_CHANNEL).
 *
 *   const client = new RpcClient(channel, { maxMessageSize: pc.sctp?.maxMessageSize });
 *   const pong = await client.unary(Agent.methods.ping, { seq: 1 }, { timeoutMs: 1000 });
 *   for await (const sample of client.serverStream(Agent.methods.metrics, {})) …
 */
import {
  decodeRpcFrame,
  type ServiceMethod,
  type RpcService,
  type ServiceMethodSpec,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import {
  bytesOf,
  resolveChannelOptions,
  type ChannelOptions,
  type DataChannelLike,
} from './channel.ts';
import { ClientCall, type CallHost, type CallOptions } from './client-call.ts';
import { encodeMessage } from './assembler.ts';
import { RpcError } from './errors.ts';
import { FrameWriter } from './writer.ts';

export interface RpcClientOptions extends ChannelOptions {
  /** Frames that could not be read (and were dropped): for logs. */
  onDroppedFrame?: (reason: string) => void;
}

type StubOf<M> =
  M extends ServiceMethod<'unary', infer Req extends TSchema, infer Res extends TSchema>
    ? (request: Static<Req>, opts?: CallOptions) => Promise<Static<Res>>
    : M extends ServiceMethod<'serverStream', infer Req extends TSchema, infer Res extends TSchema>
      ? (request: Static<Req>, opts?: CallOptions) => ClientCall<Static<Req>, Static<Res>>
      : M extends ServiceMethod<
            'clientStream' | 'bidi',
            infer Req extends TSchema,
            infer Res extends TSchema
          >
        ? (opts?: CallOptions) => ClientCall<Static<Req>, Static<Res>>
        : never;

/** A service's methods as functions of one client (`client.stub(Agent).ping({…})`). */
export type RpcStub<Specs extends Record<string, ServiceMethodSpec>> = {
  readonly [K in keyof RpcService<Specs>['methods']]: StubOf<RpcService<Specs>['methods'][K]>;
};

export class RpcClient {
  readonly #channel: DataChannelLike;
  readonly #writer: FrameWriter;
  readonly #calls = new Map<number, ClientCall<unknown, unknown>>();
  readonly #onDropped: (reason: string) => void;
  #nextId = 1;
  #closed: RpcError | undefined;
  /** Frames dropped because they could not be read. */
  droppedFrames = 0;
  readonly #host: CallHost;
  readonly #onMessage = (ev: { readonly data: unknown }): void => {
    this.#receive(ev.data);
  };
  readonly #onClose = (): void => {
    this.close(new RpcError('UNAVAILABLE', 'the data channel closed'));
  };

  constructor(channel: DataChannelLike, opts: RpcClientOptions = {}) {
    this.#channel = channel;
    this.#writer = new FrameWriter(channel, resolveChannelOptions(opts));
    this.#onDropped = opts.onDroppedFrame ?? (() => undefined);
    this.#host = {
      writer: this.#writer,
      release: (id) => {
        this.#calls.delete(id);
      },
    };
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', this.#onMessage);
    channel.addEventListener('close', this.#onClose);
    if (channel.readyState === 'closed' || channel.readyState === 'closing') this.#onClose();
  }

  /** Calls in progress. */
  get openCalls(): number {
    return this.#calls.size;
  }

  /** The largest bufferedAmount this client's sends left on the channel. */
  get maxBufferedAmount(): number {
    return this.#writer.maxBufferedAmount;
  }

  async unary<Req extends TSchema, Res extends TSchema>(
    method: ServiceMethod<'unary', Req, Res>,
    request: Static<Req>,
    opts: CallOptions = {},
  ): Promise<Static<Res>> {
    return await this.unaryCall(method, request, opts).response();
  }

  /** A unary call as a ClientCall: its headers, trailers and status besides `response()`. */
  unaryCall<Req extends TSchema, Res extends TSchema>(
    method: ServiceMethod<'unary', Req, Res>,
    request: Static<Req>,
    opts: CallOptions = {},
  ): ClientCall<Static<Req>, Static<Res>> {
    return this.#open(method, opts, { value: request });
  }

  serverStream<Req extends TSchema, Res extends TSchema>(
    method: ServiceMethod<'serverStream', Req, Res>,
    request: Static<Req>,
    opts: CallOptions = {},
  ): ClientCall<Static<Req>, Static<Res>> {
    return this.#open(method, opts, { value: request });
  }

  clientStream<Req extends TSchema, Res extends TSchema>(
    method: ServiceMethod<'clientStream', Req, Res>,
    opts: CallOptions = {},
  ): ClientCall<Static<Req>, Static<Res>> {
    return this.#open(method, opts);
  }

  bidi<Req extends TSchema, Res extends TSchema>(
    method: ServiceMethod<'bidi', Req, Res>,
    opts: CallOptions = {},
  ): ClientCall<Static<Req>, Static<Res>> {
    return this.#open(method, opts);
  }

  /** The service's methods bound to this client, typed by their declarations. */
  stub<Specs extends Record<string, ServiceMethodSpec>>(
    service: RpcService<Specs>,
  ): RpcStub<Specs> {
    const methods = service.methods as Record<string, ServiceMethod>;
    const entries = Object.entries(methods).map(([name, m]) => {
      switch (m.kind) {
        case 'unary':
          return [
            name,
            async (req: unknown, opts?: CallOptions) =>
              await this.#open(m, opts ?? {}, { value: req }).response(),
          ];
        case 'serverStream':
          return [
            name,
            (req: unknown, opts?: CallOptions) => this.#open(m, opts ?? {}, { value: req }),
          ];
        case 'clientStream':
        case 'bidi':
          return [name, (opts?: CallOptions) => this.#open(m, opts ?? {})];
      }
    });
    return Object.fromEntries(entries) as RpcStub<Specs>;
  }

  /**
   * Fail every call in progress (with `err`, default CANCELLED) and stop using the channel;
   * it stays open (it is the caller's to close).
   */
  close(err: RpcError = new RpcError('CANCELLED', 'the client was closed')): void {
    if (this.#closed !== undefined) return;
    this.#closed = err;
    this.#channel.removeEventListener('message', this.#onMessage);
    this.#channel.removeEventListener('close', this.#onClose);
    for (const call of [...this.#calls.values()]) call.abandon(err);
    this.#calls.clear();
    this.#writer.close(err);
  }

  #open<Req, Res>(
    method: ServiceMethod,
    opts: CallOptions,
    request?: { value: unknown },
  ): ClientCall<Req, Res> {
    const id = this.#nextId;
    // Odd ids, wrapping before 2^31 (a stream id is reused only after a billion calls).
    this.#nextId = this.#nextId + 2 >= 2 ** 31 ? 1 : this.#nextId + 2;
    const call = new ClientCall<Req, Res>(this.#host, id, method, opts);
    if (this.#closed !== undefined) {
      call.abandon(this.#closed);
      return call;
    }
    this.#calls.set(id, call as ClientCall<unknown, unknown>);
    let payload: Uint8Array | undefined;
    if (request !== undefined) {
      try {
        payload = encodeMessage(request.value);
      } catch (err) {
        call.abandon(
          err instanceof RpcError
            ? err
            : new RpcError('INTERNAL', 'the request could not be encoded'),
        );
        return call;
      }
    }
    call.start(opts, payload);
    return call;
  }

  #receive(data: unknown): void {
    const bytes = bytesOf(data);
    if (bytes === undefined) {
      this.#drop('a frame that is not binary');
      return;
    }
    const decoded = decodeRpcFrame(bytes);
    if (!decoded.ok) {
      const call = decoded.id === undefined ? undefined : this.#calls.get(decoded.id);
      if (call === undefined) this.#drop(decoded.reason);
      else call.protocolError(decoded.reason);
      return;
    }
    const call = this.#calls.get(decoded.frame.id);
    if (call === undefined) {
      // A stream that has ended here (a late frame after a reset) or never existed.
      return;
    }
    call.frame(decoded.frame, decoded.payload);
  }

  #drop(reason: string): void {
    this.droppedFrames++;
    this.#onDropped(reason);
  }
}
