/**
 * A token bucket per connection: `ratePerS` frames a second on average, `burst` at once.
 * Frames over the limit are refused; a connection that keeps sending past twice the burst
 * in refused frames (within one refill of the bucket) is flooding and gets closed.
 */
export class RateLimiter {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;
  #refused = 0;
  #refusedSince = 0;

  constructor(ratePerS: number, burst: number, now = performance.now()) {
    this.#ratePerMs = ratePerS / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
    this.#refusedSince = now;
  }

  /** 'ok': go on; 'refused': answer RATE_LIMITED; 'flood': close the connection. */
  take(now = performance.now()): 'ok' | 'refused' | 'flood' {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 'ok';
    }
    // Refusals are counted over the time the bucket takes to refill completely.
    if (now - this.#refusedSince > this.#burst / this.#ratePerMs) {
      this.#refused = 0;
      this.#refusedSince = now;
    }
    this.#refused += 1;
    return this.#refused > 2 * this.#burst ? 'flood' : 'refused';
  }
}
