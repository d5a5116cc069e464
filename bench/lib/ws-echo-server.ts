/**
 * The baseline of `bench/signaling.ts`: a bare fastify + @fastify/websocket server that
 * echoes every frame back on `/api`, with none of the gateway's work (no JSON parsing, auth,
 * rate limits, NATS). Run as a child process, like the gateway, so the benchmark's clients do
 * not share its event loop. Listens on 127.0.0.1, on the port given as the first argument
 * (0 or none: a free one), and prints `{"msg":"listening","port":…}` once it accepts
 * connections. SIGTERM or SIGINT closes it (and its sockets) and exits 0.
 */
import websocket from '@fastify/websocket';
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? '0');
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`ws-echo-server: bad port ${JSON.stringify(process.argv[2])}\n`);
  process.exit(2);
}

const app = Fastify({ logger: false });
// The gateway's defaults: no permessage-deflate, 64 KiB frames at most.
await app.register(websocket, { options: { maxPayload: 65_536, perMessageDeflate: false } });
app.get('/api', { websocket: true }, (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(data, { binary: isBinary });
  });
  socket.on('error', (err) => {
    process.stderr.write(`ws-echo-server: socket error: ${err.message}\n`);
  });
});
await app.listen({ host: '127.0.0.1', port });
const addr = app.server.address();
if (addr === null || typeof addr === 'string') throw new Error(`unexpected address ${addr}`);
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: addr.port })}\n`);

let closing = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (closing) return;
    closing = true;
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`ws-echo-server: close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  });
}
