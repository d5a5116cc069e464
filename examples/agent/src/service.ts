/**
 * The example agent's RPC service, declared as every message crossing a process boundary
 * is (TypeBox schemas, libs/protocol style): both sides validate what they receive against
 * it, and the types of handlers and client stubs derive from it.
 */
import { Base64Bytes, defineService, serverStream, unary } from '@switchboard/protocol';
import Type from 'typebox';

/** The largest piece of a download one message carries (bytes). */
export const CHUNK_BYTES = 256 * 1024;

export const Agent = defineService('switchboard.example.Agent', {
  /** Answers at once: the round trip. */
  ping: unary(
    Type.Object({ seq: Type.Integer({ minimum: 0 }), sentAt: Type.Optional(Type.Number()) }),
    Type.Object({ seq: Type.Integer({ minimum: 0 }), at: Type.Number() }),
  ),
  /** The agent's process figures every `intervalMs`, `count` times (0: until cancelled). */
  metrics: serverStream(
    Type.Object({
      intervalMs: Type.Integer({ minimum: 10, maximum: 60_000 }),
      count: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    }),
    Type.Object({
      at: Type.Number(),
      rssBytes: Type.Integer({ minimum: 0 }),
      heapUsedBytes: Type.Integer({ minimum: 0 }),
      cpuUserMicros: Type.Integer({ minimum: 0 }),
      uptimeS: Type.Number({ minimum: 0 }),
    }),
  ),
  /** One of the agent's files, in pieces of at most CHUNK_BYTES (base64). */
  download: serverStream(
    Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }) }),
    Type.Object({
      offset: Type.Integer({ minimum: 0 }),
      data: Base64Bytes(CHUNK_BYTES),
      /** Set on the first piece: the whole file's size. */
      size: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
  ),
  /** Echo a message of any size (up to 16 MiB of JSON): the bulk path, both ways. */
  echo: unary(Type.Object({ data: Type.String() }), Type.Object({ data: Type.String() })),
});
