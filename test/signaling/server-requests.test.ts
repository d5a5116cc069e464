/**
 * Server-to-client requests on the wire, with a hand-written client (no SDK): the frames the
 * gateway writes, and every wrong answer a client can give — late, malformed, for another
 * method, with data that fails the reply's schema, an error code of its own — each reaching
 * the caller as a clear error while the connection and the other members carry on. Also the
 * heartbeat (`ping`) and bad callers' data.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { callClient } from '@switchboard/bus';
import { ErrorCodes } from '@switchboard/protocol';
import { TestClient, type Frame } from './client.ts';
import { CLIENT_STATS } from './fixtures.ts';
import { startSignaling, type SignalingPlatform } from './platform.ts';

let p: SignalingPlatform;
const ROOM = 'srv-req';

beforeAll(async () => {
  p = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
});

afterAll(async () => {
  await p.stop();
});

/** The next server request written to `c` (a frame with `sid`). */
async function nextCall(
  c: TestClient,
  from: number,
): Promise<Frame & { sid: number; timeoutMs: number }> {
  return (await c.waitFor((f) => 'sid' in f, 5000, 'a server request', from)) as Frame & {
    sid: number;
    timeoutMs: number;
  };
}

describe('server-to-client requests on the wire', () => {
  it('writes the request, takes the reply, and refuses every wrong answer', async () => {
    const c = await TestClient.join(p.gw1.url, ROOM, 'wire');
    const other = await TestClient.join(p.gw2.url, ROOM, 'other');
    const target = { roomId: ROOM, socketId: c.socketId ?? '' };
    const call = (timeoutMs = 3000): Promise<unknown> =>
      callClient(p.bus, target, 'getClientStats', {}, { timeoutMs });

    // A good answer.
    let from = c.frames.length;
    let pending = call();
    let req = await nextCall(c, from);
    expect(req).toMatchObject({ a: 'getClientStats', d: {} });
    expect(req.timeoutMs).toBeGreaterThan(2000);
    expect(req.timeoutMs).toBeLessThanOrEqual(3000);
    c.sendRaw(JSON.stringify({ a: 'getClientStatsR', sid: req.sid, s: true, d: CLIENT_STATS }));
    await expect(pending).resolves.toEqual(CLIENT_STATS);

    // Wrong answers, each a clear error for the caller.
    const wrong: [object, string | RegExp][] = [
      [{ a: 'requestMuteR', s: true, d: { muted: true } }, 'JSON_FIELD_INVALID'], // another method
      [{ a: 'getClientStatsR', s: true, d: { at: 'soon' } }, 'JSON_FIELD_MISSING'], // bad data
      [{ a: 'getClientStatsR', s: 'yes' }, /^JSON_FIELD_(INVALID|MISSING)$/], // malformed frame
      [{ a: 'getClientStatsR', s: false, e: ErrorCodes.MEDIA_NOT_FOUND.code }, 'MEDIA_NOT_FOUND'],
      [{ a: 'getClientStatsR', s: false, e: 12345 }, 'SYSTEM'], // a code nobody knows
    ];
    for (const [frame, error] of wrong) {
      from = c.frames.length;
      pending = call();
      req = await nextCall(c, from);
      c.sendRaw(JSON.stringify({ ...frame, sid: req.sid }));
      const err = (await pending.then(
        () => undefined,
        (e: unknown) => e,
      )) as { errorName?: string } | undefined;
      expect(err?.errorName, JSON.stringify(frame)).toMatch(error);
    }

    // No answer: TIMEOUT for the caller, eventRequestCancelled for the client; its late answer
    // and one to a sid never asked are ignored.
    from = c.frames.length;
    pending = call(400);
    req = await nextCall(c, from);
    await expect(pending).rejects.toMatchObject({ errorName: 'TIMEOUT' });
    const cancelled = await c.event('eventRequestCancelled', 2000, from);
    expect(cancelled.d).toEqual({ sid: req.sid });
    c.sendRaw(JSON.stringify({ a: 'getClientStatsR', sid: req.sid, s: true, d: CLIENT_STATS }));
    c.sendRaw(JSON.stringify({ a: 'getClientStatsR', sid: 999_999, s: true, d: CLIENT_STATS }));

    // The caller's own data is checked too.
    await expect(
      callClient(p.bus, target, 'requestMute', { source: 'nose' } as never),
    ).rejects.toMatchObject({ errorName: 'JSON_FIELD_INVALID' });

    // The connection works as before; the heartbeat answers with the gateway's clock.
    const pong = await c.request('ping', {});
    expect(pong.s).toBe(true);
    expect(Math.abs((pong.d as { now: number }).now - Date.now())).toBeLessThan(5000);
    expect(await c.request('ping', { extra: [] })).toMatchObject({ s: true });
    expect(await c.request('ping')).toMatchObject({
      s: false,
      e: ErrorCodes.JSON_FIELD_MISSING.code,
    });
    // Nothing of it reached the other member.
    expect(other.frames.filter((f) => f.a !== 'joinR')).toEqual([]);

    // A closed socket fails its pending call at once (CANCELLED), not at the deadline.
    from = c.frames.length;
    pending = call(10_000);
    await nextCall(c, from);
    const t = Date.now();
    c.close(4900);
    await expect(pending).rejects.toMatchObject({ errorName: 'CANCELLED' });
    expect(Date.now() - t).toBeLessThan(3000);
    other.close();
  });

  it('answers RATE_LIMITED beyond 16 waiting requests for one client', async () => {
    const c = await TestClient.join(p.gw1.url, `${ROOM}-limit`, 'busy');
    const target = { roomId: `${ROOM}-limit`, socketId: c.socketId ?? '' };
    const calls = Array.from({ length: 17 }, () =>
      callClient(p.bus, target, 'getClientStats', {}, { timeoutMs: 1500 }).then(
        () => 'ok',
        (err: unknown) => (err as { errorName: string }).errorName,
      ),
    );
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === 'RATE_LIMITED')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'TIMEOUT')).toHaveLength(16);
    c.close();
  });
});
