/**
 * The parts of a cross-gateway relay, for `bench/signaling.ts`: a bare fastify +
 * @fastify/websocket server that relays `exchangeCandidate` frames to sockets of its own or of
 * another such server through NATS, with the gateway's design and none of its other work (no
 * validation against the protocol, no tokens, rooms, rate limits, metrics, traces or headers).
 *
 * - `hello` (a request) is answered with the socket's id, `<server>.<n>`: the server is in it,
 *   so there is nothing to look up.
 * - `exchangeCandidate` `{to, candidate}`: to a socket here, written at once and answered; to
 *   a socket of another server, queued and sent with the rest of this event-loop turn's as one
 *   NATS request, one in flight per server (the gateway's group commit); answered when that
 *   server acknowledges having written it.
 * - A batch from another server is written to its sockets, and acknowledged item by item after
 *   the turn's writes.
 *
 * Run as a child process: argv[2] is JSON `{name, natsUrl, user, passwordFile, prefix}`; prints
 * `{"msg":"listening","port":…}` once it accepts connections (on 127.0.0.1, a free port).
 * SIGTERM or SIGINT closes it and exits 0.
 */
import { readFileSync } from 'node:fs';
import websocket from '@fastify/websocket';
import { connect } from '@nats-io/transport-node';
import Fastify from 'fastify';
import { listening } from './child-server.ts';

interface Config {
  name: string;
  natsUrl: string;
  user: string;
  passwordFile: string;
  prefix: string;
}

function fail(message: string): never {
  process.stderr.write(`ws-relay-server: ${message}\n`);
  process.exit(2);
}

const config = JSON.parse(process.argv[2] ?? 'null') as Partial<Config> | null;
if (
  config === null ||
  typeof config.name !== 'string' ||
  typeof config.natsUrl !== 'string' ||
  typeof config.user !== 'string' ||
  typeof config.passwordFile !== 'string' ||
  typeof config.prefix !== 'string'
) {
  fail(`bad configuration ${JSON.stringify(process.argv[2])}`);
}
const { name, prefix } = config;
const subjectOf = (server: string): string => `${prefix}.relay.${server}`;

const nc = await connect({
  servers: config.natsUrl,
  user: config.user,
  pass: readFileSync(config.passwordFile, 'utf8').trim(),
  // As the platform's bus connects.
  noAsyncTraces: true,
});

/** The sockets here, by id: all that is used of them. */
const sockets = new Map<string, { send: (text: string) => void }>();
let nextSocket = 0;

interface Queued {
  item: string;
  answer: (delivered: boolean) => void;
}
let queued = new Map<string, Queued[]>();
const inFlight = new Set<string>();
let flushing = false;

function scheduleFlush(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(flush);
}

function flush(): void {
  flushing = false;
  const now = queued;
  queued = new Map();
  for (const [server, items] of now) {
    if (inFlight.has(server)) {
      queued.set(server, items);
      continue;
    }
    inFlight.add(server);
    nc.request(subjectOf(server), `[${items.map((i) => i.item).join(',')}]`, {
      timeout: 10_000,
    }).then(
      (msg) => {
        inFlight.delete(server);
        const delivered = msg.json<boolean[]>();
        items.forEach((i, k) => {
          i.answer(delivered[k] === true);
        });
        if (queued.has(server)) scheduleFlush();
      },
      (err: unknown) => {
        fail(`relay batch to ${server}: ${String(err)}`);
      },
    );
  }
}

nc.subscribe(subjectOf(name), {
  callback: (err, msg) => {
    if (err !== null) fail(`subscription: ${err.message}`);
    const items = msg.json<{ to: string; event: unknown }[]>();
    const delivered = items.map((i) => {
      const socket = sockets.get(i.to);
      if (socket === undefined) return false;
      socket.send(JSON.stringify(i.event));
      return true;
    });
    setImmediate(() => msg.respond(JSON.stringify(delivered)));
  },
});

interface Frame {
  a: string;
  id: number;
  d: { to?: string; candidate?: unknown };
}

const app = Fastify({ logger: false });
// The gateway's defaults: no permessage-deflate, 64 KiB frames at most.
await app.register(websocket, { options: { maxPayload: 65_536, perMessageDeflate: false } });
app.get('/api', { websocket: true }, (socket) => {
  const socketId = `${name}.${nextSocket++}`;
  sockets.set(socketId, {
    send: (text) => {
      socket.send(text);
    },
  });
  const reply = (a: string, id: number, ok: boolean, d?: unknown): void => {
    socket.send(JSON.stringify(ok ? { a, s: true, id, d } : { a, s: false, id, e: 0x404 }));
  };
  socket.on('message', (data) => {
    // Text frames arrive as one Buffer (nodebuffer, no fragments kept apart).
    const f = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : '{}') as Frame;
    if (f.a === 'hello') {
      reply('helloR', f.id, true, { socketId });
      return;
    }
    const to = f.d.to ?? '';
    const event = {
      a: 'eventExchangeCandidate',
      d: { from: { socketId, userId: socketId }, candidate: f.d.candidate },
    };
    const server = to.slice(0, to.indexOf('.'));
    if (server === name) {
      const peer = sockets.get(to);
      peer?.send(JSON.stringify(event));
      reply('exchangeCandidateR', f.id, peer !== undefined);
      return;
    }
    let queue = queued.get(server);
    if (queue === undefined) {
      queue = [];
      queued.set(server, queue);
    }
    queue.push({
      item: JSON.stringify({ to, event }),
      answer: (delivered) => {
        reply('exchangeCandidateR', f.id, delivered);
      },
    });
    if (!inFlight.has(server)) scheduleFlush();
  });
  socket.on('close', () => {
    sockets.delete(socketId);
  });
  socket.on('error', (err) => {
    process.stderr.write(`ws-relay-server: socket error: ${err.message}\n`);
  });
});
await app.listen({ host: '127.0.0.1', port: 0 });
listening('ws-relay-server', app, async () => {
  await app.close();
  await nc.close();
});
