/**
 * A server's side of one data channel: opens a ServerCall per `call` frame (up to
 * MAX_STREAMS_PER_CHANNEL at once; one more is answered RESOURCE_EXHAUSTED) and routes every
 * other frame to its stream. Frames it cannot read are dropped, or end their stream alone.
 */
import {
  RpcStatus,
  decodeRpcFrame,
  type RpcCallFrame,
  type ServiceMethod,
} from '@switchboard/protocol';
import { bytesOf, type DataChannelLike, type ResolvedChannelOptions } from './channel.ts';
import { RpcError } from './errors.ts';
import type { AnyHandler } from './handlers.ts';
import { ServerCall, type ServerCallHost } from './server-call.ts';
import { FrameWriter } from './writer.ts';

export interface Registered {
  method: ServiceMethod;
  handler: AnyHandler;
}

export interface ServedChannelOptions {
  maxStreams: number;
  onError: (err: unknown, method: string) => void;
  onDroppedFrame: (reason: string) => void;
}

export class ServedChannel {
  readonly #channel: DataChannelLike;
  readonly #methods: ReadonlyMap<string, Registered>;
  readonly #writer: FrameWriter;
  readonly #calls = new Map<number, ServerCall>();
  readonly #opts: ServedChannelOptions;
  readonly #host: ServerCallHost;
  #stopped = false;
  /** Resolves when the channel closes or `close()` is called. */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  /** Frames dropped because they could not be read. */
  droppedFrames = 0;
  readonly #onMessage = (ev: { readonly data: unknown }): void => {
    this.#receive(ev.data);
  };
  readonly #onClose = (): void => {
    this.#stop(new RpcError('UNAVAILABLE', 'the data channel closed'));
  };

  constructor(
    channel: DataChannelLike,
    methods: ReadonlyMap<string, Registered>,
    channelOpts: ResolvedChannelOptions,
    opts: ServedChannelOptions,
  ) {
    this.#channel = channel;
    this.#methods = methods;
    this.#opts = opts;
    this.#writer = new FrameWriter(channel, channelOpts);
    this.#host = {
      writer: this.#writer,
      release: (id) => {
        this.#calls.delete(id);
      },
      onError: opts.onError,
    };
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', this.#onMessage);
    channel.addEventListener('close', this.#onClose);
    if (channel.readyState === 'closed' || channel.readyState === 'closing') this.#onClose();
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.#calls.size;
  }

  /** The largest bufferedAmount this server's sends left on the channel. */
  get maxBufferedAmount(): number {
    return this.#writer.maxBufferedAmount;
  }

  /**
   * Stop serving this channel: every open call ends UNAVAILABLE (its status is still sent)
   * and its handler's signal aborts; later frames are ignored. The channel stays open.
   */
  close(): void {
    if (this.#stopped) return;
    const err = new RpcError('UNAVAILABLE', 'the server stopped serving this channel');
    for (const call of [...this.#calls.values()]) call.fail(err);
    this.#stop(err, false);
  }

  #stop(err: RpcError, channelGone = true): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#channel.removeEventListener('message', this.#onMessage);
    this.#channel.removeEventListener('close', this.#onClose);
    for (const call of [...this.#calls.values()]) call.abandon(err);
    this.#calls.clear();
    if (channelGone) this.#writer.close(err);
    this.#resolveClosed();
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
    const { frame, payload } = decoded;
    if (frame.type === 'call' && !this.#calls.has(frame.id)) {
      this.#open(frame, payload);
      return;
    }
    // Frames of a stream that has ended (a message crossing the status) are expected.
    this.#calls.get(frame.id)?.frame(frame, payload);
  }

  #open(frame: RpcCallFrame, payload: Uint8Array): void {
    const refuse = (code: number, message: string): void => {
      this.#writer.frame({ id: frame.id, type: 'status', code, message });
    };
    if (this.#calls.size >= this.#opts.maxStreams) {
      refuse(
        RpcStatus.RESOURCE_EXHAUSTED,
        `too many concurrent streams on this channel (${String(this.#opts.maxStreams)})`,
      );
      return;
    }
    const registered = this.#methods.get(frame.method);
    if (registered === undefined) {
      refuse(RpcStatus.UNIMPLEMENTED, `unknown method ${frame.method}`);
      return;
    }
    const call = new ServerCall(this.#host, frame, registered.method, registered.handler);
    this.#calls.set(frame.id, call);
    call.start();
    if (frame.msg === true) call.frame({ id: frame.id, type: 'msg' }, payload);
    if (frame.end === true) call.frame({ id: frame.id, type: 'end' }, new Uint8Array(0));
  }

  #drop(reason: string): void {
    this.droppedFrames++;
    this.#opts.onDroppedFrame(reason);
  }
}
