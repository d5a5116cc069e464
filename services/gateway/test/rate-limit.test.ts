import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/signaling/rate-limit.ts';

describe('RateLimiter', () => {
  it('lets a burst through, then refuses, then refills at the rate', () => {
    const r = new RateLimiter(10, 5, 0);
    for (let i = 0; i < 5; i++) expect(r.take(0)).toBe('ok');
    expect(r.take(0)).toBe('refused');
    // 10 per second: one token every 100 ms.
    expect(r.take(100)).toBe('ok');
    expect(r.take(100)).toBe('refused');
    expect(r.take(1000)).toBe('ok');
  });

  it('never holds more than the burst', () => {
    const r = new RateLimiter(10, 3, 0);
    for (let i = 0; i < 3; i++) expect(r.take(60_000)).toBe('ok');
    expect(r.take(60_000)).toBe('refused');
  });

  it('calls it a flood after more than twice the burst refused within a refill', () => {
    const r = new RateLimiter(10, 5, 0);
    for (let i = 0; i < 5; i++) r.take(0);
    const outcomes = Array.from({ length: 11 }, () => r.take(1));
    expect(outcomes.slice(0, 10).every((o) => o === 'refused')).toBe(true);
    expect(outcomes[10]).toBe('flood');
  });

  it('forgets refusals once a whole refill has passed', () => {
    const r = new RateLimiter(10, 5, 0);
    for (let i = 0; i < 5; i++) r.take(0);
    for (let i = 0; i < 10; i++) expect(r.take(1)).toBe('refused');
    // 5 tokens take 500 ms to refill; after that the count starts again.
    for (let i = 0; i < 5; i++) expect(r.take(2000)).toBe('ok');
    for (let i = 0; i < 10; i++) expect(r.take(2000)).toBe('refused');
  });
});
