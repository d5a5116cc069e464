/**
 * The serving side: services registered once, then served on any number of channels.
 *
 *   const server = new RpcServer({ onError: (err, method) => log.error({ err, method }) })
 *     .add(Agent, { ping: async (req, ctx) => ({ seq: req.seq }), … });
 *   const served = server.serve(channel, { maxMessageSize: pc.sctp?.maxMessageSize });
 */
import {
  MAX_STREAMS_PER_CHANNEL,
  type ServiceMethod,
  type ServiceMethodSpec,
  type RpcService,
} from '@switchboard/protocol';
import { resolveChannelOptions, type ChannelOptions, type DataChannelLike } from './channel.ts';
import type { AnyHandler, RpcImplementation } from './handlers.ts';
import { ServedChannel, type Registered } from './served-channel.ts';

export interface RpcServerOptions {
  /**
   * Errors a handler threw that were not RpcErrors (the client sees UNKNOWN, without their
   * text) and the runtime's own. Default: console.error.
   */
  onError?: (err: unknown, method: string) => void;
  /** Frames dropped because they could not be read (default: counted only). */
  onDroppedFrame?: (reason: string) => void;
  /** Open streams per channel (default and most: MAX_STREAMS_PER_CHANNEL). */
  maxStreamsPerChannel?: number;
}

export class RpcServer {
  readonly #methods = new Map<string, Registered>();
  readonly #opts: RpcServerOptions;

  constructor(opts: RpcServerOptions = {}) {
    this.#opts = opts;
  }

  /** Register a service's implementation (every method must have its handler). */
  add<Specs extends Record<string, ServiceMethodSpec>>(
    service: RpcService<Specs>,
    implementation: RpcImplementation<Specs>,
  ): this {
    const handlers = implementation as unknown as Record<string, AnyHandler | undefined>;
    for (const method of Object.values(service.methods as Record<string, ServiceMethod>)) {
      const handler = handlers[method.name];
      if (typeof handler !== 'function') throw new Error(`no handler for ${method.path}`);
      if (this.#methods.has(method.path)) throw new Error(`${method.path} is registered already`);
      this.#methods.set(method.path, { method, handler: handler.bind(implementation) });
    }
    return this;
  }

  /** Serve the registered services on `channel` until it closes (or the handle's close()). */
  serve(channel: DataChannelLike, opts: ChannelOptions = {}): ServedChannel {
    return new ServedChannel(channel, this.#methods, resolveChannelOptions(opts), {
      maxStreams: Math.min(
        this.#opts.maxStreamsPerChannel ?? MAX_STREAMS_PER_CHANNEL,
        MAX_STREAMS_PER_CHANNEL,
      ),
      onError:
        this.#opts.onError ??
        ((err, method) => {
          console.error(`RPC ${method} failed:`, err);
        }),
      onDroppedFrame: this.#opts.onDroppedFrame ?? (() => undefined),
    });
  }
}
