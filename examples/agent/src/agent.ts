/**
 * The example agent's service implementation: what a device or an AI agent serves to the
 * callers that reach it by name. `files` maps a download name to its bytes (a real agent
 * reads its disk; this one is given them, so it stays safe to run anywhere).
 */
import { RpcError, type RpcImplementationOf } from '@switchboard/rpc';
import type { Agent } from './service.ts';
import { CHUNK_BYTES } from './service.ts';

export function agentService(
  files: ReadonlyMap<string, Uint8Array> = new Map(),
): RpcImplementationOf<typeof Agent> {
  return {
    ping: (req) => ({ seq: req.seq, at: Date.now() }),
    async *metrics(req, ctx) {
      for (let i = 0; req.count === 0 || i < req.count; i++) {
        if (i > 0) await sleep(req.intervalMs, ctx.signal);
        if (ctx.signal.aborted) return;
        const mem = process.memoryUsage();
        yield {
          at: Date.now(),
          rssBytes: mem.rss,
          heapUsedBytes: mem.heapUsed,
          cpuUserMicros: process.cpuUsage().user,
          uptimeS: process.uptime(),
        };
      }
    },
    async *download(req) {
      const file = files.get(req.name);
      if (file === undefined) throw new RpcError('NOT_FOUND', `no file ${req.name}`);
      for (let offset = 0; offset < file.length || offset === 0; offset += CHUNK_BYTES) {
        const piece = file.subarray(offset, offset + CHUNK_BYTES);
        yield {
          offset,
          data: Buffer.from(piece).toString('base64'),
          ...(offset === 0 ? { size: file.length } : {}),
        };
        if (file.length === 0) return;
      }
    },
    echo: (req) => ({ data: req.data }),
  };
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
