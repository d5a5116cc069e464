/**
 * RPC over WebRTC data channels, with gRPC's semantics (adapted from the Go package rpcwebrtc,
 * itself grpc-over-webrtc): unary, server-streaming, client-streaming and bidirectional
 * calls, metadata (headers and trailers), status codes, deadlines and cancellation, many
 * calls multiplexed over one reliable, ordered data channel.
 *
 * Every data-channel message is one binary frame:
 *
 *   [u32 big-endian H][H bytes: the frame header, JSON, UTF-8][payload bytes, possibly none]
 *
 * The header names the stream (`id`) and the frame's `type`:
 *
 *   call     client → server  opens stream `id`: {"id", "type": "call", "method":
 *                             "/pkg.Service/method", "metadata"?, "timeoutMs"?, "msg"?,
 *                             "end"?}. With `"msg": true` its payload is the first request
 *                             message, whole; `"end": true` half-closes at once. So a unary
 *                             call whose request fits one frame is one data-channel message.
 *   headers  server → client  response headers {"id", "type": "headers", "metadata"?}; sent
 *                             before the first response message, or not at all (none before
 *                             a message or the status: empty headers)
 *   msg      both             a chunk of one message {"id", "type": "msg", "more"?: true}; the
 *                             payload is a slice of the message's JSON (UTF-8). `more` says
 *                             another chunk of the same message follows; the chunk without it
 *                             ends the message. Chunks of different streams interleave, so a
 *                             16 MiB message does not hold up a small call.
 *   end      client → server  half-close: the client sends no more messages
 *   status   server → client  ends the stream: {"id", "type": "status", "code", "message"?,
 *                             "metadata"? (the trailers)}
 *   reset    both             abandons the stream at once: {"id", "type": "reset", "code"}
 *                             (CANCELLED, DEADLINE_EXCEEDED, …); no reply
 *   window   both             flow control: {"id", "type": "window", "bytes"}: the receiver's
 *                             reader took `bytes` more of this stream's messages; the sender
 *                             may send that much more payload
 *
 * Flow control, per stream and direction: a sender may have at most STREAM_WINDOW_BYTES of
 * `msg` payload (a `call` frame's message included) that the receiver has not acknowledged
 * with `window` frames; it waits for them beyond. A receiver acknowledges messages as its
 * reader takes them (in batches), so a slow reader slows its sender and nobody holds more than
 * a window of unread messages; past it (a sender ignoring the window) the stream ends
 * RESOURCE_EXHAUSTED.
 *
 * Stream ids are chosen by the client: odd numbers counting up from 1 (even ones are left
 * for streams a server might open one day). Only `msg` frames and `call` frames with `msg`
 * carry a payload. Unknown header
 * fields are ignored (room to extend).
 *
 * Messages are JSON values, checked against the method's TypeBox schema on receipt by both
 * sides. Binary content travels as base64 strings (`Base64Bytes`): JSON has no bytes, and the
 * schemas stay the one description of a message. A message is at most MAX_MESSAGE_BYTES of
 * JSON; a frame is at most the channel's max-message-size (`RTCSctpTransport.maxMessageSize`,
 * 64 KiB when unknown). A channel carries at most MAX_STREAMS_PER_CHANNEL open streams; the
 * server refuses one more with RESOURCE_EXHAUSTED.
 *
 * Frames that are not this format (text, too short, bad header JSON, a header that fails its
 * schema) are dropped, or — when their stream can be told — end that stream alone; frames of
 * an unknown stream are dropped. Nothing a peer sends ends the channel.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { validator, type Validator } from './validate.ts';

// --------------------------------------------------------------------------------- limits

/** Open streams a channel carries at once (rpcwebrtc's MaxStreamCount). */
export const MAX_STREAMS_PER_CHANNEL = 256;
/** Largest message, as JSON bytes (rpcwebrtc's MaxMessageSize, 1 << 24). */
export const MAX_MESSAGE_BYTES = 1 << 24;
/**
 * Each stream's flow-control window, each way (bytes of message payload sent and not yet
 * acknowledged with `window` frames): two of the largest messages, so one always fits.
 */
export const STREAM_WINDOW_BYTES = 2 * MAX_MESSAGE_BYTES;
/** A receiver acknowledges what its reader took once it adds up to this (or the queue empties). */
export const WINDOW_UPDATE_BYTES = 1024 * 1024;
/** Largest frame header (JSON bytes): metadata included, so it stays small. */
export const MAX_FRAME_HEADER_BYTES = 16 * 1024;
/** Largest metadata map (its JSON bytes), headers or trailers alike. */
export const MAX_METADATA_BYTES = 8 * 1024;
/** The data channel's max-message-size when the SDP does not say (RFC 8841's default). */
export const DEFAULT_CHANNEL_MESSAGE_BYTES = 64 * 1024;
/**
 * The smallest max-message-size the framing works with: a frame header of the largest size
 * plus some payload.
 */
export const MIN_CHANNEL_MESSAGE_BYTES = MAX_FRAME_HEADER_BYTES + 4 + 1024;

// --------------------------------------------------------------------------- status codes

/** gRPC's status codes, numbered as gRPC numbers them (codes.proto). */
export const RpcStatusCodes = {
  OK: { code: 0, message: 'OK' },
  CANCELLED: { code: 1, message: 'The call was cancelled' },
  UNKNOWN: { code: 2, message: 'Unknown error' },
  INVALID_ARGUMENT: { code: 3, message: 'Invalid argument' },
  DEADLINE_EXCEEDED: { code: 4, message: 'The deadline passed' },
  NOT_FOUND: { code: 5, message: 'Not found' },
  ALREADY_EXISTS: { code: 6, message: 'Already exists' },
  PERMISSION_DENIED: { code: 7, message: 'Permission denied' },
  RESOURCE_EXHAUSTED: { code: 8, message: 'Resource exhausted' },
  FAILED_PRECONDITION: { code: 9, message: 'Failed precondition' },
  ABORTED: { code: 10, message: 'Aborted' },
  OUT_OF_RANGE: { code: 11, message: 'Out of range' },
  UNIMPLEMENTED: { code: 12, message: 'Not implemented' },
  INTERNAL: { code: 13, message: 'Internal error' },
  UNAVAILABLE: { code: 14, message: 'The channel is unavailable' },
  DATA_LOSS: { code: 15, message: 'Data loss' },
  UNAUTHENTICATED: { code: 16, message: 'Unauthenticated' },
} as const satisfies Record<string, { code: number; message: string }>;

export type RpcStatusName = keyof typeof RpcStatusCodes;
export type RpcCode = (typeof RpcStatusCodes)[RpcStatusName]['code'];

/** Name → number: `RpcStatus.NOT_FOUND === 5`. */
export const RpcStatus = Object.fromEntries(
  Object.entries(RpcStatusCodes).map(([name, entry]) => [name, entry.code]),
) as { readonly [K in RpcStatusName]: (typeof RpcStatusCodes)[K]['code'] };

const rpcNameByCode = new Map<number, RpcStatusName>(
  (Object.keys(RpcStatusCodes) as RpcStatusName[]).map((n) => [RpcStatusCodes[n].code, n]),
);

/** The name of a code; a number outside the table is UNKNOWN (as gRPC reads one). */
export function rpcStatusName(code: number): RpcStatusName {
  return rpcNameByCode.get(code) ?? 'UNKNOWN';
}

// ------------------------------------------------------------------------------- metadata

/**
 * Headers and trailers: lower-case keys (gRPC's rule, minus the leading `_`, `.`, `-` so no
 * key is `__proto__`), a string or a list of strings each.
 */
export const RpcMetadataKey = Type.String({ pattern: '^[0-9a-z][0-9a-z_.-]{0,63}$' });
const MetadataValue = Type.Union([
  Type.String({ maxLength: 4096 }),
  Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 16 }),
]);
export const RpcMetadata = Type.Record(RpcMetadataKey, MetadataValue, {
  maxProperties: 64,
  additionalProperties: false,
});
export type RpcMetadata = Static<typeof RpcMetadata>;
export const rpcMetadata = validator(RpcMetadata);

/** Whether `md` fits MAX_METADATA_BYTES (besides its schema). */
export function metadataFits(md: RpcMetadata): boolean {
  return new TextEncoder().encode(JSON.stringify(md)).length <= MAX_METADATA_BYTES;
}

/**
 * Binary content inside a message: standard base64 (RFC 4648 §4, padded). `maxBytes` bounds
 * the decoded size.
 */
export function Base64Bytes(maxBytes: number = MAX_MESSAGE_BYTES): ReturnType<typeof Type.String> {
  return Type.String({
    maxLength: Math.ceil(maxBytes / 3) * 4,
    pattern: '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$',
  });
}

// --------------------------------------------------------------------------------- frames

/** Stream ids: positive 31-bit integers (the client's odd counter). */
export const RpcStreamId = Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 });
/** `/package.Service/method`. */
export const RpcMethodPath = Type.String({
  maxLength: 512,
  pattern: '^/[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*$',
});
const StatusCode = Type.Integer({ minimum: 0, maximum: 1000 });

export const RpcCallFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('call'),
  method: RpcMethodPath,
  metadata: Type.Optional(RpcMetadata),
  /** The caller's deadline, relative (clocks of two peers are not comparable). */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 })),
  /** The payload is the first request message, whole. */
  msg: Type.Optional(Type.Boolean()),
  /** Half-close right away (after the message, if any). */
  end: Type.Optional(Type.Boolean()),
});
export const RpcHeadersFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('headers'),
  metadata: Type.Optional(RpcMetadata),
});
export const RpcMessageFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('msg'),
  more: Type.Optional(Type.Boolean()),
});
export const RpcEndFrame = Type.Object({ id: RpcStreamId, type: Type.Literal('end') });
export const RpcStatusFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('status'),
  code: StatusCode,
  message: Type.Optional(Type.String({ maxLength: 1024 })),
  metadata: Type.Optional(RpcMetadata),
});
export const RpcResetFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('reset'),
  code: StatusCode,
});
export const RpcWindowFrame = Type.Object({
  id: RpcStreamId,
  type: Type.Literal('window'),
  bytes: Type.Integer({ minimum: 1, maximum: STREAM_WINDOW_BYTES }),
});
export const RpcFrame = Type.Union([
  RpcCallFrame,
  RpcHeadersFrame,
  RpcMessageFrame,
  RpcEndFrame,
  RpcStatusFrame,
  RpcResetFrame,
  RpcWindowFrame,
]);
export type RpcCallFrame = Static<typeof RpcCallFrame>;
export type RpcHeadersFrame = Static<typeof RpcHeadersFrame>;
export type RpcMessageFrame = Static<typeof RpcMessageFrame>;
export type RpcEndFrame = Static<typeof RpcEndFrame>;
export type RpcStatusFrame = Static<typeof RpcStatusFrame>;
export type RpcResetFrame = Static<typeof RpcResetFrame>;
export type RpcWindowFrame = Static<typeof RpcWindowFrame>;
export type RpcFrame = Static<typeof RpcFrame>;
export const rpcFrame = validator(RpcFrame);

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** One data-channel message: the header, then the payload (`msg`, and `call` with `msg`). */
export function encodeRpcFrame(header: RpcFrame, payload?: Uint8Array): Uint8Array<ArrayBuffer> {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + (payload?.length ?? 0));
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  if (payload !== undefined) out.set(payload, 4 + json.length);
  return out;
}

export type DecodedRpcFrame =
  | { ok: true; frame: RpcFrame; payload: Uint8Array }
  /** `id`: the stream the frame named, when it named one validly (answer on that stream). */
  | { ok: false; reason: string; id?: number };

/** Read one data-channel message (a view of `bytes`, not a copy). Never throws. */
export function decodeRpcFrame(bytes: Uint8Array): DecodedRpcFrame {
  if (bytes.length < 4) return { ok: false, reason: 'shorter than its length prefix' };
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (length > MAX_FRAME_HEADER_BYTES) return { ok: false, reason: 'header too large' };
  if (4 + length > bytes.length) return { ok: false, reason: 'header past the end' };
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(4, 4 + length)));
  } catch {
    return { ok: false, reason: 'header is not JSON' };
  }
  const payload = bytes.subarray(4 + length);
  const parsed = rpcFrame.parse(header);
  if (!parsed.ok) {
    const id = (header as { id?: unknown } | null)?.id;
    const reason = `bad header: ${parsed.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`;
    return typeof id === 'number' && Number.isSafeInteger(id) && id >= 1 && id < 2 ** 31
      ? { ok: false, reason, id }
      : { ok: false, reason };
  }
  const frame = parsed.value;
  const carries = frame.type === 'msg' || (frame.type === 'call' && frame.msg === true);
  if (!carries && payload.length > 0) {
    return { ok: false, reason: `a ${frame.type} frame with a payload`, id: frame.id };
  }
  return { ok: true, frame, payload };
}

// ------------------------------------------------------------------------------- services

export type ServiceMethodKind = 'unary' | 'serverStream' | 'clientStream' | 'bidi';

/** A method as declared: its kind and the schemas of its request and response messages. */
export interface ServiceMethodSpec<
  K extends ServiceMethodKind = ServiceMethodKind,
  Req extends TSchema = TSchema,
  Res extends TSchema = TSchema,
> {
  readonly kind: K;
  readonly request: Req;
  readonly response: Res;
}

/** A method of a defined service: its wire path and compiled validators too. */
export interface ServiceMethod<
  K extends ServiceMethodKind = ServiceMethodKind,
  Req extends TSchema = TSchema,
  Res extends TSchema = TSchema,
> extends ServiceMethodSpec<K, Req, Res> {
  readonly service: string;
  readonly name: string;
  /** `/service/name`, as the `call` frame names it. */
  readonly path: string;
  readonly requests: Validator<Req>;
  readonly responses: Validator<Res>;
}

export type ServiceRequestOf<M extends ServiceMethodSpec> = Static<M['request']>;
export type ServiceResponseOf<M extends ServiceMethodSpec> = Static<M['response']>;

export function unary<Req extends TSchema, Res extends TSchema>(
  request: Req,
  response: Res,
): ServiceMethodSpec<'unary', Req, Res> {
  return { kind: 'unary', request, response };
}
export function serverStream<Req extends TSchema, Res extends TSchema>(
  request: Req,
  response: Res,
): ServiceMethodSpec<'serverStream', Req, Res> {
  return { kind: 'serverStream', request, response };
}
export function clientStream<Req extends TSchema, Res extends TSchema>(
  request: Req,
  response: Res,
): ServiceMethodSpec<'clientStream', Req, Res> {
  return { kind: 'clientStream', request, response };
}
export function bidi<Req extends TSchema, Res extends TSchema>(
  request: Req,
  response: Res,
): ServiceMethodSpec<'bidi', Req, Res> {
  return { kind: 'bidi', request, response };
}

export type ServiceMethods<Specs extends Record<string, ServiceMethodSpec>> = {
  readonly [K in keyof Specs & string]: ServiceMethod<
    Specs[K]['kind'],
    Specs[K]['request'],
    Specs[K]['response']
  >;
};

export interface RpcService<
  Specs extends Record<string, ServiceMethodSpec> = Record<string, ServiceMethodSpec>,
> {
  /** Fully qualified, protobuf style: `switchboard.example.Agent`. */
  readonly name: string;
  readonly methods: ServiceMethods<Specs>;
}

const SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Declare a service: its methods' schemas are compiled once here, and its types give the
 * server's handlers and the client's stubs their request and response types.
 *
 *   const Agent = defineService('switchboard.example.Agent', {
 *     ping: unary(PingRequest, PingReply),
 *     metrics: serverStream(MetricsRequest, Sample),
 *   });
 */
export function defineService<const Specs extends Record<string, ServiceMethodSpec>>(
  name: string,
  specs: Specs,
): RpcService<Specs> {
  if (!SERVICE_NAME.test(name)) throw new Error(`invalid RPC service name: ${name}`);
  const methods = Object.fromEntries(
    Object.entries(specs).map(([method, spec]) => {
      if (!METHOD_NAME.test(method)) throw new Error(`invalid RPC method name: ${method}`);
      const full: ServiceMethod = {
        ...spec,
        service: name,
        name: method,
        path: `/${name}/${method}`,
        requests: validator(spec.request),
        responses: validator(spec.response),
      };
      return [method, full];
    }),
  ) as ServiceMethods<Specs>;
  return { name, methods };
}
