/** What a service implementation is: one handler per method, typed by its declaration. */
import type {
  RpcMetadata,
  ServiceMethod,
  ServiceMethodSpec,
  RpcService,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';

export interface RpcContext {
  /** `/service/method`. */
  readonly method: string;
  /**
   * Aborts when the call ends before the handler does: the client cancelled, the deadline
   * passed (reason: an RpcError DEADLINE_EXCEEDED), the channel closed. Stop working then.
   */
  readonly signal: AbortSignal;
  /** The request headers. */
  readonly metadata: RpcMetadata;
  /** The caller's deadline on this machine's clock (epoch ms), if it set one. */
  readonly deadline: number | undefined;
  /** Add response headers (sent with the first response, or at the end). */
  setHeader(md: RpcMetadata): void;
  /** Send the response headers now (once), with `md` added. */
  sendHeader(md?: RpcMetadata): void;
  /** Add trailers (sent with the status, success or not). */
  setTrailer(md: RpcMetadata): void;
}

type Awaitable<T> = T | Promise<T>;

export type RpcHandler<M> =
  M extends ServiceMethod<'unary', infer Req extends TSchema, infer Res extends TSchema>
    ? (request: Static<Req>, ctx: RpcContext) => Awaitable<Static<Res>>
    : M extends ServiceMethod<'serverStream', infer Req extends TSchema, infer Res extends TSchema>
      ? (request: Static<Req>, ctx: RpcContext) => AsyncIterable<Static<Res>>
      : M extends ServiceMethod<
            'clientStream',
            infer Req extends TSchema,
            infer Res extends TSchema
          >
        ? (requests: AsyncIterable<Static<Req>>, ctx: RpcContext) => Awaitable<Static<Res>>
        : M extends ServiceMethod<'bidi', infer Req extends TSchema, infer Res extends TSchema>
          ? (requests: AsyncIterable<Static<Req>>, ctx: RpcContext) => AsyncIterable<Static<Res>>
          : never;

/** A handler for every method of the service. */
export type RpcImplementation<Specs extends Record<string, ServiceMethodSpec>> = {
  readonly [K in keyof RpcService<Specs>['methods']]: RpcHandler<RpcService<Specs>['methods'][K]>;
};

/** A handler as the runtime calls it (its kind decides what it is given and returns). */
export type AnyHandler = (input: unknown, ctx: RpcContext) => unknown;

/** The implementation type of a defined service: `RpcImplementationOf<typeof Agent>`. */
export type RpcImplementationOf<S> =
  S extends RpcService<infer Specs> ? RpcImplementation<Specs> : never;
