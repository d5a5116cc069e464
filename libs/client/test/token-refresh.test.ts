/**
 * The SDK's token refresh under fake timers: `exp` read from the token and the refresh time
 * set a margin before it, a failed refresh retried with backoff, the new token presented to
 * the gateway (or with the next reconnect while it is away) and at a rejoin, and a rejoin
 * refused with AUTH_FAILED refreshed and tried once more. The gateway is the scripted fake
 * WebSocket of ./scripted-socket.ts; test/client/session.test.ts runs the SDK against the real
 * platform.
 */
import { describe, expect, it, vi } from 'vitest';
import { refreshAt, tokenExpiry } from '@switchboard/client';
import { ErrorCodes } from '@switchboard/protocol';
import { connected, gw, opts, token, useScriptedGateway } from './scripted-socket.ts';

useScriptedGateway();

describe('token refresh', () => {
  it('reads exp, and refreshes a margin before it (not before half of a short life)', () => {
    expect(tokenExpiry(token(1_800_000_000))).toBe(1_800_000_000_000);
    expect(tokenExpiry('opaque')).toBeUndefined();
    expect(refreshAt(100_000, 0, 10_000)).toBe(90_000);
    expect(refreshAt(40_000, 0, 60_000)).toBe(20_000);
    // The server's clock is 5 s ahead: its expiry comes 5 s earlier here.
    expect(refreshAt(100_000, 0, 10_000, 5000)).toBe(85_000);
  });

  it('refreshes before expiry, retries a failed refresh with backoff, rejoins with the new token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const calls: number[] = [];
    const errors: string[] = [];
    let fail = 1;
    const s = await connected(
      opts({
        token: token(now + 120),
        tokenRefreshMarginMs: 60_000,
        onError: (e) => errors.push(e.message),
        refreshToken: async () => {
          calls.push(Date.now());
          if (fail-- > 0) throw new Error('backend down');
          return token(Math.floor(Date.now() / 1000) + 120);
        },
      }),
    );
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(59_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(2000);
    // At exp − margin; the failure is reported and retried after the backoff (100 ms).
    expect(calls.map((c) => c - t0)).toEqual([
      expect.closeTo(60_000, -2),
      expect.closeTo(60_100, -2),
    ]);
    expect(errors).toEqual(['backend down']);
    const fresh = s.token;
    expect(tokenExpiry(fresh)).toBeGreaterThan(Date.now() + 100_000);
    // The next refresh is scheduled from the new token's expiry.
    await vi.advanceTimersByTimeAsync(61_000);
    expect(calls).toHaveLength(3);
    // A rejoin presents the token of the moment.
    gw.reconnect = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect(gw.joins.at(-1)).toBe(s.token);
    expect(gw.joins.at(-1)).not.toBe(gw.joins[0]);
    await s.leave();
  });

  it('presents a refreshed token to the server, or with the next reconnect when offline', async () => {
    let n = 0;
    const fresh = (): string => token(Math.floor(Date.now() / 1000) + 120 + ++n);
    const s = await connected(
      opts({
        token: token(Math.floor(Date.now() / 1000) + 120),
        tokenRefreshMarginMs: 60_000,
        refreshToken: async () => fresh(),
      }),
    );
    // Connected at exp − margin: refreshToken {bearer} goes to the gateway.
    await vi.advanceTimersByTimeAsync(61_000);
    expect(gw.refreshes).toEqual([s.token]);
    expect(gw.reconnects).toEqual([]);
    // The next refresh falls while the gateway is away: the reconnect carries the token.
    await vi.advanceTimersByTimeAsync(58_000);
    gw.up = false;
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(4000);
    expect(s.state).not.toBe('connected');
    expect(gw.refreshes).toHaveLength(1);
    gw.up = true;
    await vi.advanceTimersByTimeAsync(2000);
    expect(s.state).toBe('connected');
    expect(gw.reconnects.at(-1)?.['bearer']).toBe(s.token);
    // Only once: the next resume has nothing new to present.
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    expect(gw.reconnects.at(-1)?.['bearer']).toBeUndefined();
    await s.leave();
  });

  it('refreshes and retries once when a rejoin is refused with AUTH_FAILED', async () => {
    let refreshed = 0;
    const s = await connected(
      opts({
        refreshToken: async () => {
          refreshed++;
          gw.joinError = undefined;
          return token(Math.floor(Date.now() / 1000) + 3600);
        },
      }),
    );
    gw.reconnect = ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code;
    gw.joinError = ErrorCodes.AUTH_FAILED.code;
    const rejoined = s.once('rejoined');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    await rejoined;
    expect(refreshed).toBe(1);
    expect(s.state).toBe('connected');
    await s.leave();
  });
});
