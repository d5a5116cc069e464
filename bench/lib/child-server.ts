/**
 * The end of a baseline's server process (ws-echo-server.ts, ws-relay-server.ts), as
 * `bench/signaling.ts` expects it: once it listens it prints `{"msg":"listening","port":…}`;
 * SIGTERM or SIGINT closes it (`close`) and it exits 0, or 1 when closing failed.
 */
import type { FastifyInstance } from 'fastify';

export function listening(name: string, app: FastifyInstance, close: () => Promise<void>): void {
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') {
    process.stderr.write(`${name}: unexpected address ${String(addr)}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: addr.port })}\n`);
  let closing = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (closing) return;
      closing = true;
      close().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`${name}: close failed: ${String(err)}\n`);
          process.exit(1);
        },
      );
    });
  }
}
