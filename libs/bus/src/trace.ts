/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) for bus hops: every request
 * carries a `traceparent`; a handler's outgoing requests are child spans of its request.
 */
import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function newTraceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

/** A new span in the trace of `parent` (a new trace when there is no valid parent). */
export function childTraceparent(parent: string | undefined): string {
  const m = parent === undefined ? null : TRACEPARENT.exec(parent);
  if (m === null || /^0+$/.test(m[1] ?? '')) return newTraceparent();
  return `00-${m[1] ?? ''}-${randomBytes(8).toString('hex')}-${m[3] ?? '01'}`;
}

/** The trace id of a traceparent, or undefined when it is not valid. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent === undefined ? undefined : TRACEPARENT.exec(traceparent)?.[1];
}
