import { afterEach, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { requestSignal } from '@switchboard/service';

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('requestSignal', () => {
  it('fires when the client goes away, not when the response is sent', async () => {
    app = Fastify();
    let aborted: Promise<string> | undefined;
    let quickSignal: AbortSignal | undefined;
    app.get('/slow', async (_req, reply) => {
      const signal = requestSignal(reply);
      aborted = new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          resolve(String(signal.reason));
        });
      });
      await aborted;
      return { never: 'read' };
    });
    app.get('/quick', async (_req, reply) => {
      quickSignal = requestSignal(reply);
      return { ok: true };
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });

    const res = await fetch(`${base}/quick`);
    expect(await res.json()).toEqual({ ok: true });
    expect(quickSignal?.aborted).toBe(false);

    await expect(fetch(`${base}/slow`, { signal: AbortSignal.timeout(200) })).rejects.toThrow();
    await expect(aborted).resolves.toMatch(/client closed the request/);
  });
});
