/**
 * Messages on the wire: a value's JSON, UTF-8, cut into `msg` chunks; put together again on
 * receipt, at most MAX_MESSAGE_BYTES.
 */
import { MAX_MESSAGE_BYTES } from '@switchboard/protocol';
import { RpcError } from './errors.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** JSON.stringify as it behaves: undefined for a value JSON has no text for (a function, …). */
const stringify = JSON.stringify as (value: unknown) => string | undefined;

/** A value's bytes on the wire; RESOURCE_EXHAUSTED when too large, INTERNAL when not JSON. */
export function encodeMessage(value: unknown): Uint8Array {
  let json: string | undefined;
  try {
    json = stringify(value);
  } catch (err) {
    throw new RpcError('INTERNAL', 'the message is not JSON-serialisable', {}, { cause: err });
  }
  if (json === undefined) throw new RpcError('INTERNAL', 'the message is not JSON-serialisable');
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw new RpcError(
      'RESOURCE_EXHAUSTED',
      `message of ${String(bytes.length)} bytes exceeds the limit of ${String(MAX_MESSAGE_BYTES)}`,
    );
  }
  return bytes;
}

export type Assembled =
  | { kind: 'partial' }
  | { kind: 'message'; value: unknown; bytes: number }
  | { kind: 'oversize' }
  | { kind: 'invalid'; reason: string };

/** One stream's message being received. */
export class MessageAssembler {
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  /** Add a chunk (copied: the channel may reuse its buffer). */
  add(chunk: Uint8Array, more: boolean): Assembled {
    this.#bytes += chunk.length;
    if (this.#bytes > MAX_MESSAGE_BYTES) {
      this.#chunks = [];
      return { kind: 'oversize' };
    }
    if (more) {
      this.#chunks.push(chunk.slice());
      return { kind: 'partial' };
    }
    let whole = chunk;
    if (this.#chunks.length > 0) {
      whole = new Uint8Array(this.#bytes);
      let at = 0;
      for (const c of this.#chunks) {
        whole.set(c, at);
        at += c.length;
      }
      whole.set(chunk, at);
    }
    const bytes = this.#bytes;
    this.#chunks = [];
    this.#bytes = 0;
    try {
      return { kind: 'message', value: JSON.parse(decoder.decode(whole)), bytes };
    } catch {
      return { kind: 'invalid', reason: 'the message is not JSON (UTF-8)' };
    }
  }
}
