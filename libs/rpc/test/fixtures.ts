/** A test service and a pair of werift peers connected over 127.0.0.1. */
import {
  MAX_MESSAGE_BYTES,
  RpcError,
  bidi,
  clientStream,
  defineService,
  serverStream,
  unary,
} from '../src/index.ts';
import { LOOPBACK_CONFIG, WeriftPeer, isLoopbackCandidate } from '../src/werift.ts';
import { connectPeers } from '../src/index.ts';
import type { PeerDataChannel, RpcImplementationOf } from '../src/index.ts';
import Type from 'typebox';

export const Text = Type.Object({ text: Type.String({ maxLength: 1000 }) });
export const Blob = Type.Object({ data: Type.String({ maxLength: MAX_MESSAGE_BYTES }) });

export const TestService = defineService('switchboard.test.Echo', {
  echo: unary(Text, Text),
  count: serverStream(
    Type.Object({ n: Type.Integer({ minimum: 0, maximum: 100_000 }) }),
    Type.Object({ i: Type.Integer() }),
  ),
  sum: clientStream(Type.Object({ n: Type.Integer() }), Type.Object({ total: Type.Integer() })),
  chat: bidi(Text, Text),
  big: unary(Blob, Blob),
  bigStream: serverStream(Type.Object({ bytes: Type.Integer({ minimum: 0 }) }), Blob),
  hang: unary(Text, Text),
  meta: unary(Text, Text),
  fail: unary(Text, Text),
  flood: serverStream(Type.Object({ n: Type.Integer({ minimum: 0, maximum: 1000 }) }), Blob),
});

/** What the handlers saw, for the tests to check. */
export interface Seen {
  aborts: { method: string; reason: unknown }[];
  hanging: number;
  errors: unknown[];
  /** Messages `flood` has produced. */
  yielded: number;
}

export function implementation(seen: Seen): RpcImplementationOf<typeof TestService> {
  return {
    echo: async (req) => ({ text: req.text }),
    async *count(req) {
      for (let i = 0; i < req.n; i++) yield { i };
    },
    sum: async (requests) => {
      let total = 0;
      for await (const r of requests) total += r.n;
      return { total };
    },
    async *chat(requests) {
      for await (const r of requests) yield { text: r.text.toUpperCase() };
    },
    // The same data back, its first 16 characters reversed (so an echo is not mistaken).
    big: async (req) => ({ data: flipHead(req.data) }),
    async *bigStream(req) {
      const data = 'x'.repeat(1024 * 1024 - 11);
      for (let sent = 0; sent < req.bytes; sent += 1024 * 1024) yield { data };
    },
    hang: async (_req, ctx) => {
      seen.hanging++;
      try {
        await new Promise<never>((_, reject) => {
          ctx.signal.addEventListener('abort', () => {
            seen.aborts.push({ method: ctx.method, reason: ctx.signal.reason });
            reject(ctx.signal.reason as Error);
          });
        });
      } finally {
        seen.hanging--;
      }
      return { text: 'never' };
    },
    meta: async (req, ctx) => {
      const id = ctx.metadata['x-id'];
      ctx.setHeader({ 'x-seen': typeof id === 'string' ? id : '' });
      ctx.setTrailer({ 'x-done': ['1', '2'] });
      return { text: req.text };
    },
    async *flood(req) {
      // 1 MiB of JSON each.
      const data = 'f'.repeat(1024 * 1024 - '{"data":""}'.length);
      for (let i = 0; i < req.n; i++) {
        seen.yielded++;
        yield { data };
      }
    },
    fail: async (req) => {
      if (req.text === 'rpc') throw new RpcError('NOT_FOUND', 'no such thing', { 'x-why': 'test' });
      throw new Error('secret internal detail');
    },
  };
}

export interface Pair {
  offerer: WeriftPeer;
  answerer: WeriftPeer;
  client: PeerDataChannel;
  server: PeerDataChannel;
}

/** Two werift peers on 127.0.0.1 (trickle ICE passed directly), one data channel open. */
export async function connectedPair(): Promise<Pair> {
  const offerer = new WeriftPeer(LOOPBACK_CONFIG);
  const answerer = new WeriftPeer(LOOPBACK_CONFIG);
  const { offered, answered } = await connectPeers(offerer, answerer, {
    filter: isLoopbackCandidate,
    signal: AbortSignal.timeout(20_000),
  });
  return { offerer, answerer, client: offered, server: answered };
}

/** The first 16 characters of `s` reversed (ASCII), the rest as it is. */
export function flipHead(s: string): string {
  return s.slice(0, 16).split('').reverse().join('') + s.slice(16);
}

/** A printable random string of `n` characters (JSON needs no escapes for it). */
export function randomText(n: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(n, at + 65536)));
  }
  for (let i = 0; i < n; i++) bytes[i] = alphabet.charCodeAt((bytes[i] ?? 0) & 63);
  return new TextDecoder().decode(bytes);
}
