/**
 * How the SDK hands an eventBatch to its listeners: batches asked for on join and on every
 * reconnect, their events handed out in order as if each had come alone, a bad one reported
 * alone, a batch within a batch not taken for one. The gateway is the scripted fake WebSocket
 * of ./scripted-socket.ts, under fake timers.
 */
import { describe, expect, it, vi } from 'vitest';
import { connected, gw, opts, useScriptedGateway } from './scripted-socket.ts';

useScriptedGateway();

describe('event batches', () => {
  const peer = (n: number) => ({ socketId: String(n).repeat(32), userId: `u${String(n)}` });
  const joined = (n: number) => ({
    a: 'eventJoin',
    d: { roomId: 'r', roomSize: n + 1, ...peer(n) },
  });

  it('are asked for on join and on every reconnect', async () => {
    const s = await connected(opts());
    expect(gw.joinData.map((d) => d['batchEvents'])).toEqual([true]);
    const resumed = s.once('resumed');
    gw.current?.drop();
    await vi.advanceTimersByTimeAsync(50);
    await resumed;
    expect(gw.reconnects.map((d) => d['batchEvents'])).toEqual([true]);
    await s.leave();
  });

  it('hand out their events in order, as if each had come alone; a bad one is reported alone', async () => {
    const errors: string[] = [];
    const s = await connected(opts({ onError: (e) => errors.push(e.message) }));
    const got: string[] = [];
    s.on('eventJoin', (d) => {
      got.push(`join ${d.userId} ${String(d.roomSize)}`);
    });
    s.on('eventLeave', (d) => {
      got.push(`leave ${d.userId} ${String(d.roomSize)}`);
    });
    gw.current?.receive(joined(1));
    gw.current?.receive({
      a: 'eventBatch',
      d: [
        joined(2),
        { a: 'eventLeave', d: { roomId: 'r', roomSize: 2, ...peer(1) } },
        { a: 'eventJoin', d: { roomId: 'r' } },
        joined(3),
      ],
    });
    gw.current?.receive(joined(4));
    expect(got).toEqual(['join u1 2', 'join u2 3', 'leave u1 2', 'join u3 4', 'join u4 5']);
    expect(errors).toHaveLength(1);
    // A batch in a batch is not one.
    gw.current?.receive({ a: 'eventBatch', d: [{ a: 'eventBatch', d: [joined(5)] }] });
    expect(got).toHaveLength(5);
    expect(errors).toHaveLength(2);
    await s.leave();
  });
});
