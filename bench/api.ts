/**
 * `./run bench api [-- flags]`: the server API's latency beside the bus RPC underneath it,
 * measured in the same run, alternating one and the other so drift on the machine hits both:
 *
 *   listRooms (limit 1000) with `--rooms` rooms (1,000): GET /v1/rooms?limit=1000 through the
 *     SDK's ApiClient (HTTP, a token, validation, the bus request, JSON out) vs
 *     RoomsAdmin.listRooms called directly on the bus
 *   removeParticipant of a member with an open socket: DELETE …/participants/{socketId}
 *     through the ApiClient vs RoomsAdmin.removeParticipant on the bus, each until its reply
 *     (the member's socket is closed with 4004 either way)
 *
 * Platform: NATS and PostgreSQL (found or started), the rooms service, a gateway and the api
 * service. Prints a table; writes every figure to <ARTIFACTS_DIR>/bench/api-<timestamp>.json.
 * Exit 0, 1 on a failure, 2 on bad usage, 130 on SIGINT. `--help` lists the flags.
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Bus } from '@switchboard/bus';
import { ApiClient, mintApiToken } from '@switchboard/client/server';
import { harnessNatsAuth, mintToken, uniquePrefix, type Platform } from '@switchboard/devstack';
import { DEV_API_KEY, DEV_API_SECRET, RoomsAdmin, type JoinReply } from '@switchboard/protocol';
import type WebSocket from 'ws';
import { commandLine, log, pool, runBench, stats, writeResults, type Stats } from './lib/cli.ts';
import { RunServices, apiWsUrl, benchInfra } from './lib/infra.ts';
import { openSocket } from './lib/ws-client.ts';

const cli = commandLine('api', {
  rooms: {
    env: 'BENCH_API_ROOMS',
    def: 1000,
    min: 1,
    help: 'rooms to list (listRooms, limit 1000)',
  },
  lists: { env: 'BENCH_API_LISTS', def: 200, min: 1, help: 'measured listRooms of each kind' },
  removals: {
    env: 'BENCH_API_REMOVALS',
    def: 200,
    min: 1,
    help: 'measured removeParticipant of each kind (2x this many members join)',
  },
  warmup: { env: 'BENCH_API_WARMUP', def: 20, min: 0, help: 'unmeasured calls of each kind first' },
});

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

/** A member in a room with an open socket (the bus and the API remove them alike). */
interface Member {
  roomId: string;
  socketId: string;
  ws: WebSocket;
  closed: Promise<number>;
}

async function joinMember(wsUrl: string, roomId: string, userId: string): Promise<Member> {
  const ws = await openSocket(wsUrl);
  const closed = new Promise<number>((resolve) => {
    ws.once('close', (code) => {
      resolve(code);
    });
  });
  const bearer = await mintToken({ sub: userId, rooms: [roomId] });
  const reply = await new Promise<{ s?: boolean; d?: unknown }>((resolve, reject) => {
    ws.once('message', (data: Buffer) => {
      try {
        resolve(JSON.parse(data.toString('utf8')) as { s?: boolean; d?: unknown });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    ws.send(JSON.stringify({ a: 'join', id: 1, d: { roomId, bearer, platform: 'Web' } }));
  });
  if (reply.s !== true) throw new Error(`join ${roomId}: ${JSON.stringify(reply)}`);
  ws.on('message', () => undefined);
  return { roomId, socketId: (reply.d as JoinReply).socketId, ws, closed };
}

await runBench(cli.usage, async (run) => {
  const flags = cli.parse();
  const roomCount = flags.num('rooms');
  const lists = flags.num('lists');
  const removals = flags.num('removals');
  const warmup = flags.num('warmup');
  const startedAt = new Date();

  const infra = await benchInfra(run);
  log('platform: rooms, a gateway, the api');
  const platform: Platform = await new RunServices(run).startPlatform(infra, {
    subjectPrefix: uniquePrefix('benchapi'),
    names: ['rooms', 'gateway', 'api'],
    // The default log level, as deployed: the api logs each request (two lines).
    env: { LOG_LEVEL: 'info', ROOM_DEFAULT_CAPACITY: '1000' },
  });
  const bus = new Bus({
    servers: infra.natsUrl,
    auth: harnessNatsAuth(),
    prefix: platform.env['NATS_SUBJECT_PREFIX'] ?? '',
    service: 'api',
    instanceId: 'bench-api',
    log: pino({ level: 'silent' }),
    requestTimeoutMs: 10_000,
  });
  run.cleanup.add('close the bus client', async () => {
    await bus.close();
  });
  await run.failure.guard('the bus', 10_000, bus.whenConnected());
  const api = new ApiClient({
    url: platform.get('api').url,
    keyId: DEV_API_KEY,
    secret: DEV_API_SECRET,
    sub: 'bench',
  });

  // ------------------------------------------------------------------ listRooms, 1,000 rooms
  log(`creating ${String(roomCount)} rooms`);
  const ids = Array.from({ length: roomCount }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  await run.failure.guard(
    'create the rooms',
    300_000,
    pool(ids, 32, async (roomId) => {
      await bus.request(RoomsAdmin.createRoom, { roomId, emptyTimeoutS: null });
    }),
  );
  const listHttp: number[] = [];
  const listFetch: number[] = [];
  const listBus: number[] = [];
  const listUrl = `${platform.get('api').url}/v1/rooms?limit=1000`;
  const bearer = mintApiToken({
    keyId: DEV_API_KEY,
    secret: DEV_API_SECRET,
    grants: { roomList: true, rooms: ['*'] },
    ttlS: 600,
  });
  let listed = 0;
  log(`listRooms (limit 1000): ${String(warmup)} + ${String(lists)} of each kind, alternating`);
  for (let i = -warmup; i < lists; i++) {
    run.failure.check();
    let t = performance.now();
    const viaHttp = await api.listRooms({ limit: 1000 });
    const http = performance.now() - t;
    t = performance.now();
    const res = await fetch(listUrl, { headers: { authorization: `Bearer ${bearer}` } });
    const plain = (await res.json()) as { rooms: unknown[] };
    const fetched = performance.now() - t;
    t = performance.now();
    const viaBus = await bus.request(RoomsAdmin.listRooms, { limit: 1000, only: ['*'] });
    const direct = performance.now() - t;
    if (plain.rooms.length !== viaBus.rooms.length) throw new Error('listRooms: plain fetch');
    if (viaHttp.rooms.length !== viaBus.rooms.length) {
      throw new Error(
        `listRooms: ${String(viaHttp.rooms.length)} rooms over HTTP, ${String(viaBus.rooms.length)} on the bus`,
      );
    }
    listed = viaBus.rooms.length;
    if (i >= 0) {
      listHttp.push(http);
      listFetch.push(fetched);
      listBus.push(direct);
    }
  }
  const listBytes = JSON.stringify(await api.listRooms({ limit: 1000 })).length;

  // ------------------------------------------------------------------- removeParticipant
  const wsUrl = apiWsUrl(platform.get('gateway'));
  const total = 2 * (removals + warmup);
  log(`${String(total)} members joining 20 rooms`);
  const members: Member[] = [];
  const slots = Array.from({ length: total }, (_, i) => i);
  await run.failure.guard(
    'join the members',
    300_000,
    pool(slots, 16, async (i) => {
      members.push(await joinMember(wsUrl, `kick-${String(i % 20)}`, `user-${String(i)}`));
    }),
  );
  run.cleanup.add('close the members', async () => {
    for (const m of members) m.ws.terminate();
  });
  const removeHttp: number[] = [];
  const removeBus: number[] = [];
  log(`removeParticipant: ${String(warmup)} + ${String(removals)} of each kind, alternating`);
  for (let i = -warmup; i < removals; i++) {
    run.failure.check();
    const a = members.pop();
    const b = members.pop();
    if (a === undefined || b === undefined) throw new Error('out of members');
    let t = performance.now();
    await api.removeParticipant({ roomId: a.roomId, socketId: a.socketId, reason: 'bench' });
    const http = performance.now() - t;
    t = performance.now();
    await bus.request(RoomsAdmin.removeParticipant, {
      roomId: b.roomId,
      socketId: b.socketId,
      reason: 'bench',
    });
    const direct = performance.now() - t;
    for (const m of [a, b]) {
      const code = await run.failure.guard('the member closed', 10_000, m.closed);
      if (code !== 4004) throw new Error(`a removed member closed with ${String(code)}, not 4004`);
    }
    if (i >= 0) {
      removeHttp.push(http);
      removeBus.push(direct);
    }
  }

  const s = {
    listHttp: stats(listHttp) as Stats,
    listFetch: stats(listFetch) as Stats,
    listBus: stats(listBus) as Stats,
    removeHttp: stats(removeHttp) as Stats,
    removeBus: stats(removeBus) as Stats,
  };
  const row = (what: string, http: number, direct: number): string =>
    `${what.padEnd(40)} ${`${http.toFixed(2)} ms`.padStart(11)} ${`${direct.toFixed(2)} ms`.padStart(11)} ${`${http >= direct ? '+' : ''}${(http - direct).toFixed(2)} ms`.padStart(11)} ${`${(http / direct).toFixed(2)}×`.padStart(7)}`;
  const text = [
    `Server API vs the bus RPC underneath (same run, alternating)`,
    `${''.padEnd(40)} ${'HTTP API'.padStart(11)} ${'bus RPC'.padStart(11)} ${'overhead'.padStart(11)} ${'ratio'.padStart(7)}`,
    row(
      `listRooms ${String(listed)} rooms, p50 (n=${String(lists)})`,
      s.listHttp.p50,
      s.listBus.p50,
    ),
    row(`listRooms ${String(listed)} rooms, p99`, s.listHttp.p99, s.listBus.p99),
    row(`  plain fetch + JSON.parse, p50`, s.listFetch.p50, s.listBus.p50),
    row(`  plain fetch + JSON.parse, p99`, s.listFetch.p99, s.listBus.p99),
    row(`removeParticipant p50 (n=${String(removals)})`, s.removeHttp.p50, s.removeBus.p50),
    row(`removeParticipant p99`, s.removeHttp.p99, s.removeBus.p99),
    '',
    `HTTP API: the SDK's ApiClient (token, fetch, the API's auth and validation, the bus request, JSON, the reply validated); plain fetch: the same request without the SDK (no reply validation). listRooms reply: ${String(listBytes)} bytes of JSON.`,
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  writeResults('api', startedAt, {
    options: { rooms: roomCount, lists, removals, warmup },
    summary: {
      listRoomsMs: {
        rooms: listed,
        replyBytes: listBytes,
        http: s.listHttp,
        plainFetch: s.listFetch,
        bus: s.listBus,
        overheadP50: round(s.listHttp.p50 - s.listBus.p50),
        ratioP50: round(s.listHttp.p50 / s.listBus.p50),
      },
      removeParticipantMs: {
        http: s.removeHttp,
        bus: s.removeBus,
        overheadP50: round(s.removeHttp.p50 - s.removeBus.p50),
        ratioP50: round(s.removeHttp.p50 / s.removeBus.p50),
      },
    },
    samples: { listHttp, listFetch, listBus, removeHttp, removeBus },
    failedChecks: run.anomalies,
    text,
  });
  return run.anomalies.length > 0 ? 1 : 0;
});
