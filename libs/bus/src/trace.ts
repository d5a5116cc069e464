/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) for bus hops: every request
 * carries a `traceparent`; a handler's outgoing requests are child spans of its request.
 */
import { randomFillSync } from 'node:crypto';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Ids are drawn from a pool refilled 4 KiB at a time: a syscall per id showed up in profiles
// of the gateway's relay path (every relay is a request, every request a span).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const hex = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return hex;
}

export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** A new span in the trace of `parent` (a new trace when there is no valid parent). */
export function childTraceparent(parent: string | undefined): string {
  const m = parent === undefined ? null : TRACEPARENT.exec(parent);
  if (m === null || /^0+$/.test(m[1] ?? '')) return newTraceparent();
  return `00-${m[1] ?? ''}-${randomHex(8)}-${m[3] ?? '01'}`;
}

/** The trace id of a traceparent, or undefined when it is not valid. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent === undefined ? undefined : TRACEPARENT.exec(traceparent)?.[1];
}
