/**
 * Reconnect delays: exponential backoff with jitter. Attempt `n` (0 for the first retry)
 * waits `min(maxMs, initialMs × factor^n)` scaled down by a random share of at most
 * `jitter`: with jitter 0.5 a delay of 8 s becomes a uniform pick in [4 s, 8 s], so clients
 * dropped together by one gateway do not all come back in the same instant.
 */
export interface BackoffOptions {
  /** The first retry's delay before jitter, ms. */
  initialMs: number;
  /** No delay grows beyond this, ms. */
  maxMs: number;
  /** Growth per attempt. */
  factor: number;
  /** Share of the delay that is random, 0 (none) to 1 ("full jitter"). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
};

/** The delay before retry `attempt` (0-based). `random` returns a number in [0, 1). */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt ${String(attempt)}`);
  const jitter = Math.min(1, Math.max(0, opts.jitter));
  // Past ~50 doublings the exponent alone overflows to Infinity; min() keeps it at maxMs.
  const base = Math.min(opts.maxMs, opts.initialMs * opts.factor ** attempt);
  return Math.round(base * (1 - jitter * random()));
}
