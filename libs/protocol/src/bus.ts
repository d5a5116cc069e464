/**
 * What crosses NATS between services: subject names, the request/reply envelope and the
 * headers every request carries. Payloads are JSON; every one is validated on receipt.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { validator, type Validator } from './validate.ts';

/** Headers carried by every bus request. */
export const BusHeaders = {
  /** W3C trace context (https://www.w3.org/TR/trace-context/), propagated hop to hop. */
  traceparent: 'traceparent',
  /** Absolute deadline, epoch milliseconds. The handler's AbortSignal fires at it. */
  deadline: 'sb-deadline',
  /** `<service>/<instanceId>` of the caller, for logs. */
  caller: 'sb-caller',
} as const;

/** A subject prefix: dot-separated tokens, so several deployments can share one NATS. */
export const SubjectPrefix = Type.String({
  pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
  maxLength: 64,
});

export const ServiceName = Type.Union([
  Type.Literal('gateway'),
  Type.Literal('rooms'),
  Type.Literal('media'),
  Type.Literal('events'),
  Type.Literal('api'),
]);
export type ServiceName = Static<typeof ServiceName>;
export const SERVICE_NAMES: readonly ServiceName[] = ['gateway', 'rooms', 'media', 'events', 'api'];

/** The error half of a reply. `code` is one of ErrorCodes. */
export const BusError = Type.Object({
  code: Type.Integer(),
  name: Type.String(),
  message: Type.String(),
});
export type BusError = Static<typeof BusError>;

/** Every bus reply: `{ok: true, data}` or `{ok: false, error}`. */
export const BusReplyEnvelope = Type.Union([
  Type.Object({ ok: Type.Literal(true), data: Type.Unknown() }),
  Type.Object({ ok: Type.Literal(false), error: BusError }),
]);
export type BusReplyEnvelope = Static<typeof BusReplyEnvelope>;
export const busReplyEnvelope = validator(BusReplyEnvelope);

/**
 * A request/reply method on the bus: which service answers it, and both payload schemas.
 *
 * Most methods are answered by any instance of the service (its queue group). An `addressed`
 * one is answered by the one instance a request names — `bus.request(Media.produce, req,
 * {to: nodeId})`, the media node hosting the room — on a subject of that instance's own, which
 * it alone serves (`bus.serve(Media.produce, handler, {address: nodeId})`).
 */
export interface RpcMethod<Req extends TSchema = TSchema, Rep extends TSchema = TSchema> {
  readonly service: ServiceName;
  readonly method: string;
  readonly request: Validator<Req>;
  readonly reply: Validator<Rep>;
  readonly addressed: boolean;
}
export type RpcRequest<M extends RpcMethod> = Static<M['request']['schema']>;
export type RpcReply<M extends RpcMethod> = Static<M['reply']['schema']>;

const TOKEN = /^[A-Za-z0-9_-]+$/;

export function rpcMethod<Req extends TSchema, Rep extends TSchema>(
  service: ServiceName,
  method: string,
  request: Req,
  reply: Rep,
  opts: { addressed?: boolean } = {},
): RpcMethod<Req, Rep> {
  if (!/^[A-Za-z0-9]+$/.test(method)) throw new Error(`bad method name ${method}`);
  return {
    service,
    method,
    request: validator(request),
    reply: validator(reply),
    addressed: opts.addressed ?? false,
  };
}

/** Subject names. Every subject starts with the deployment's prefix. */
export const subjects = {
  /**
   * The subject of a method: `<prefix>.<service>.rpc.<method>`, or for an addressed one
   * `<prefix>.<service>.node.<to>.rpc.<method>` (`to` one token, or `*` in permissions).
   * Naming an address for a method that has none, or none for one that has, is a bug.
   */
  rpc: (prefix: string, m: Pick<RpcMethod, 'service' | 'method' | 'addressed'>, to?: string) => {
    if (!m.addressed) {
      if (to !== undefined) throw new Error(`${m.service}.${m.method} is not addressed`);
      return `${prefix}.${m.service}.rpc.${m.method}`;
    }
    if (to === undefined || (to !== '*' && !TOKEN.test(to))) {
      throw new Error(`${m.service}.${m.method} needs an address (one token), not ${String(to)}`);
    }
    return `${prefix}.${m.service}.node.${to}.rpc.${m.method}`;
  },
  /** The queue group a service's instances share. */
  queue: (service: ServiceName) => `sb-${service}`,
} as const;

/** What an RPC subject names (subjects.rpc read back); undefined for any other subject. */
export function parseRpcSubject(
  prefix: string,
  subject: string,
): { service: ServiceName; method: string; to: string | undefined } | undefined {
  if (!subject.startsWith(`${prefix}.`)) return undefined;
  const t = subject.slice(prefix.length + 1).split('.');
  const service = SERVICE_NAMES.find((n) => n === t[0]);
  if (service === undefined) return undefined;
  const [, a, b, c, d] = t;
  if (t.length === 3 && a === 'rpc' && b !== undefined && /^[A-Za-z0-9]+$/.test(b)) {
    return { service, method: b, to: undefined };
  }
  if (
    t.length === 5 &&
    a === 'node' &&
    b !== undefined &&
    TOKEN.test(b) &&
    c === 'rpc' &&
    d !== undefined &&
    /^[A-Za-z0-9]+$/.test(d)
  ) {
    return { service, method: d, to: b };
  }
  return undefined;
}

// ------------------------------------------------------------------------- system RPCs

export const PingReply = Type.Object({
  service: ServiceName,
  instanceId: Type.String(),
  version: Type.String(),
  uptimeMs: Type.Integer({ minimum: 0 }),
});
export type PingReply = Static<typeof PingReply>;

export const PingRequest = Type.Object({});

/** Every service answers `ping` (used by start-up checks and bus tests). */
export const Ping: Record<ServiceName, RpcMethod<typeof PingRequest, typeof PingReply>> = {
  gateway: rpcMethod('gateway', 'ping', PingRequest, PingReply),
  rooms: rpcMethod('rooms', 'ping', PingRequest, PingReply),
  media: rpcMethod('media', 'ping', PingRequest, PingReply),
  events: rpcMethod('events', 'ping', PingRequest, PingReply),
  api: rpcMethod('api', 'ping', PingRequest, PingReply),
};

/** A subject prefix as part of a JetStream stream or KV bucket name (no dots). */
export function jetStreamToken(prefix: string): string {
  return prefix.replace(/[^A-Za-z0-9_-]/g, '_');
}
