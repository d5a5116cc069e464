/**
 * `./run bench client [-- flags]`: what the client SDK (libs/client) costs and how fast it
 * comes back, beside a bare `ws` client doing the same by hand, measured in the same run.
 *
 * Platform: NATS and PostgreSQL (found or started), the rooms service and gateways.
 *
 * 1. **Request round trip**: one member sends R `orientationChange` requests one after
 *    another (gateway → NATS → rooms service → PostgreSQL and back) through the SDK
 *    (`session.request`: id bookkeeping, deadline, reply validation) on Node's global
 *    WebSocket, the SDK on the `ws` package's WebSocket, and a bare `ws` socket of the same
 *    session shape (another member) sending the same frames.
 * 2. **Resume after a gateway dies**: T times, a member joins through a gateway of its own
 *    (the platform's second gateway as its fallback), the test SIGKILLs that gateway and times
 *    until the session is usable again: the SDK's `resumed`, and for the bare client its own
 *    close handler opening a socket to the second gateway and sending `reconnect` at once.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/client-<timestamp>.json. Exit 0 on success; 1 on any failure or
 * failed check; 130 on SIGINT.
 */
import { performance } from 'node:perf_hooks';
import { connect, type Session, type WebSocketLike } from '@switchboard/client';
import { ServiceProcess, mintToken, uniquePrefix, type Platform } from '@switchboard/devstack';
import WebSocket from 'ws';
import {
  commandLine,
  log,
  runBench,
  stats,
  writeResults,
  type BenchRun,
  type Stats,
} from './lib/cli.ts';
import { RunServices, apiWsUrl, benchInfra, watchService } from './lib/infra.ts';
import { openSocket } from './lib/ws-client.ts';

const cli = commandLine('client', {
  requests: { env: 'BENCH_REQUESTS', def: 2000, min: 10, help: 'sequential requests per client' },
  trials: { env: 'BENCH_TRIALS', def: 10, min: 1, help: 'gateway kills per client kind' },
});

const ROOM_WINDOW_MS = 10_000;

// ------------------------------------------------------------------------- a bare client

/** A `ws` client speaking the protocol by hand: requests with ids, nothing else. */
class BareClient {
  readonly ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, (f: { s: boolean; d?: unknown; e?: number }) => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as {
        id?: number;
        s: boolean;
        d?: unknown;
        e?: number;
      };
      if (typeof f.id !== 'number') return;
      this.#pending.get(f.id)?.(f);
      this.#pending.delete(f.id);
    });
  }

  static async open(url: string): Promise<BareClient> {
    return new BareClient(await openSocket(url));
  }

  async request(a: string, d: unknown): Promise<unknown> {
    const id = this.#next++;
    const reply = new Promise<{ s: boolean; d?: unknown; e?: number }>((resolve) => {
      this.#pending.set(id, resolve);
    });
    this.ws.send(JSON.stringify({ a, d, id }));
    const f = await reply;
    if (!f.s) throw new Error(`${a} failed: 0x${(f.e ?? 0).toString(16)}`);
    return f.d;
  }
}

// -------------------------------------------------------------------------------- phases

/** The SDK on the `ws` package's WebSocket instead of Node's global one (undici). */
const wsFactory = (url: string): WebSocketLike => new WebSocket(url) as unknown as WebSocketLike;

async function roundTrips(
  platform: Platform,
  requests: number,
): Promise<{ sdk: Stats | undefined; sdkOnWs: Stats | undefined; bare: Stats | undefined }> {
  const gw = platform.get('gateway');
  const room = 'bench-client-rtt';
  const token = await mintToken({ sub: 'sdk', rooms: [room] });
  const session = await connect(apiWsUrl(gw), { room, token });
  const onWs = await connect(apiWsUrl(gw), {
    room,
    token: await mintToken({ sub: 'sdk-ws', rooms: [room] }),
    WebSocket: wsFactory,
  });
  const bare = await BareClient.open(apiWsUrl(gw));
  await bare.request('join', {
    roomId: room,
    bearer: await mintToken({ sub: 'bare', rooms: [room] }),
    platform: 'bench',
  });
  const data = { orientation: 90, camera: 'front' } as const;
  // Warm both paths up, then alternate halves so neither gets the quieter machine.
  const kinds: [number[], () => Promise<unknown>][] = [
    [
      [],
      async () => {
        await session.request('orientationChange', data);
      },
    ],
    [
      [],
      async () => {
        await onWs.request('orientationChange', data);
      },
    ],
    [[], async () => await bare.request('orientationChange', data)],
  ];
  for (let i = 0; i < Math.min(200, requests); i++) {
    for (const [, f] of kinds) await f();
  }
  const half = Math.floor(requests / 2);
  for (let round = 0; round < 2; round++) {
    for (const [samples, f] of kinds) {
      for (let i = 0; i < half; i++) {
        const t = performance.now();
        await f();
        samples.push(performance.now() - t);
      }
    }
  }
  await session.leave();
  await onWs.leave();
  bare.ws.close(1000);
  const [sdk, sdkOnWs, raw] = kinds.map(([samples]) => stats(samples));
  return { sdk, sdkOnWs, bare: raw };
}

async function resumes(
  run: BenchRun,
  platform: Platform,
  fallback: ServiceProcess,
  trials: number,
): Promise<{ sdk: Stats | undefined; bare: Stats | undefined }> {
  const sdk: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < trials; i++) {
    for (const kind of ['sdk', 'bare'] as const) {
      const gw = await ServiceProcess.start('gateway', platform.env, {
        label: `gw-${kind}-${String(i)}`,
      });
      let killing = false;
      watchService(run, gw, () => killing);
      await gw.waitReady();
      const room = `bench-client-resume-${String(i)}`;
      const token = await mintToken({ sub: kind, rooms: [room] });
      if (kind === 'sdk') {
        const s: Session = await connect([apiWsUrl(gw), apiWsUrl(fallback)], { room, token });
        const resumed = s.once('resumed');
        killing = true;
        const t = performance.now();
        gw.process.signal('SIGKILL');
        await resumed;
        sdk.push(performance.now() - t);
        await s.leave();
      } else {
        const c = await BareClient.open(apiWsUrl(gw));
        const join = (await c.request('join', {
          roomId: room,
          bearer: token,
          platform: 'bench',
        })) as {
          socketId: string;
          resumeToken: string;
        };
        const back = new Promise<number>((resolve, reject) => {
          c.ws.once('close', () => {
            BareClient.open(apiWsUrl(fallback))
              .then(async (c2) => {
                await c2.request('reconnect', {
                  socketId: join.socketId,
                  resumeToken: join.resumeToken,
                });
                resolve(performance.now());
                c2.ws.close(1000);
              })
              .catch(reject);
          });
        });
        killing = true;
        const t = performance.now();
        gw.process.signal('SIGKILL');
        bare.push((await back) - t);
      }
      await gw.process.exited;
    }
  }
  return { sdk: stats(sdk), bare: stats(bare) };
}

// ------------------------------------------------------------------------------------ main

const fmt = (s: Stats | undefined): string =>
  s === undefined ? '—' : `${s.p50.toFixed(2)} / ${s.p90.toFixed(2)} / ${s.p99.toFixed(2)}`;

await runBench(cli.usage, async (run) => {
  const flags = cli.parse();
  const opts = { requests: flags.num('requests'), trials: flags.num('trials') };
  const startedAt = new Date();
  const infra = await benchInfra(run);
  const services = new RunServices(run);
  const platform = await services.startPlatform(infra, {
    subjectPrefix: uniquePrefix('bench-client'),
    names: ['rooms', 'gateway'],
    // Sequential requests go well past a client's default rate limit (50/s).
    env: {
      RECONNECT_WINDOW_MS: String(ROOM_WINDOW_MS),
      WS_RATE_LIMIT_PER_S: '100000',
      WS_RATE_LIMIT_BURST: '100000',
    },
  });
  const fallback = await services.start(
    'gateway',
    platform.env,
    'stop the fallback gateway',
    'gw-fallback',
  );
  await fallback.waitReady();

  log(`round trips: ${String(opts.requests)} requests per client`);
  const rtt = await roundTrips(platform, opts.requests);
  log(`resumes: ${String(opts.trials)} gateway kills per client kind`);
  const resume = await resumes(run, platform, fallback, opts.trials);
  run.failure.check();

  const text = [
    `client SDK beside a bare ws client (ms, p50 / p90 / p99)`,
    `  request round trip (orientationChange, ${String(opts.requests)})  SDK ${fmt(rtt.sdk)}   SDK on ws ${fmt(rtt.sdkOnWs)}   bare ws ${fmt(rtt.bare)}`,
    `  gateway SIGKILL → usable again (${String(opts.trials)})           SDK ${fmt(resume.sdk)}   bare ws ${fmt(resume.bare)}`,
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  writeResults('client', startedAt, { options: opts, roundTrip: rtt, resume, text });
  return 0;
});
