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
import { listening } from './child-server.ts';

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
listening('ws-echo-server', app, async () => {
  await app.close();
});
