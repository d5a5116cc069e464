/**
 * What the services need of the bus to talk to each other: requests, publishes, and the
 * methods and subscriptions they answer. Not the connection's lifecycle (connecting,
 * readiness, reconnects, stopping, closing): that is the business of whoever owns the Bus.
 * Bus implements it; code that takes a BusLike can be tested with a fake.
 */
import type { RpcMethod, RpcReply, RpcRequest, Validator } from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import type { RequestOptions } from './sender.ts';
import type { Handler } from './served-method.ts';
import type { BusSubscription, SubscriptionHandler } from './subscription.ts';

export interface BusLike {
  /** Subject prefix of this deployment. */
  readonly prefix: string;

  /**
   * Call a method on the service that owns it. Resolves with the validated reply; rejects
   * with a ProtocolError: the handler's own code, SERVICE_UNAVAILABLE (no instance or no
   * NATS), TIMEOUT (deadline passed), CANCELLED (signal) or SYSTEM (bad reply).
   */
  request<M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    opts?: RequestOptions,
  ): Promise<RpcReply<M>>;

  /**
   * A request on any subject whose answerer replies with a bus envelope (see `respond` of
   * `subscribe`): the same deadlines, cancellation and error mapping as `request`. The
   * payload is JSON-encoded, unless it is JsonText.
   */
  requestSubject<S extends TSchema>(
    subject: string,
    payload: unknown,
    reply: Validator<S>,
    opts?: RequestOptions,
  ): Promise<Static<S>>;

  /** Publish a message (fire and forget; buffered while reconnecting). */
  publish(subject: string, payload: unknown, traceparent?: string): void;

  /**
   * Publish each of `messages` (JSON text) as one message on `subject`, without headers: for
   * a burst of thousands (a room.live tick), where a header block, a trace and an encoding
   * per message would cost more than the message itself (a third of the publishing time with
   * headers, measured). All of them are UTF-8 encoded at once. Buffered by the NATS client:
   * `flush` tells when the server has them.
   */
  publishMany(subject: string, messages: readonly string[]): void;

  /**
   * Resolves once the server has everything this connection published so far (its PONG came
   * back); CANCELLED when `signal` aborts first, SERVICE_UNAVAILABLE when not connected.
   */
  flush(signal?: AbortSignal): Promise<void>;

  /**
   * Answer `method` in this service's queue group: requests are shared among the
   * service's instances. The handler gets the validated request and a context whose
   * signal fires at the caller's deadline; what it throws is mapped onto the reply
   * (a ProtocolError keeps its code; anything else is logged and becomes SYSTEM).
   *
   * An addressed method (RpcMethod.addressed) is answered by this instance alone, as
   * `address` (its id: requests name it in `to`), with no queue group: e.g. the media node
   * hosting a room.
   */
  serve<M extends RpcMethod>(method: M, handler: Handler<M>, opts?: { address?: string }): void;

  /**
   * Receive messages on `subject` (wildcards allowed), validated against `schema`: an
   * invalid one is logged and, if it is a request, answered with JSON_FIELD_INVALID. A
   * handler's error is logged and, for a request, answered (its code, or SYSTEM). With
   * `queue`, each message goes to one subscriber of the group. A `vital` subscription's
   * messages are never shed when this bus has BUS_MAX_CONCURRENT in hand: liveness
   * signals (heartbeats), small and rare, whose loss would make a busy service take its
   * healthy peers for dead.
   */
  subscribe<S extends TSchema>(
    subject: string,
    schema: Validator<S>,
    handler: SubscriptionHandler<S>,
    opts?: { queue?: string; vital?: boolean },
  ): BusSubscription;
}
