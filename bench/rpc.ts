/**
 * `./run bench rpc [-- flags]`: RPC over a WebRTC data channel (libs/rpc) beside the bare data
 * channel it runs on, measured in the same run, between two werift peers in this process
 * connected over 127.0.0.1 (host candidates only, no STUN).
 *
 * Baseline (a channel of its own, no RPC):
 *   - round trip: R small binary messages (32 bytes) echoed one after another;
 *   - bulk: B MiB sent one way in 256 KiB messages and again in 64 KiB messages (the RPC's
 *     frame size), with the same backpressure as the RPC (1 MiB high-water mark); timed until
 *     the last byte arrives. (Not 1 MiB messages: werift 0.25's SCTP stalls on the second
 *     1 MiB message sent after its buffer drained; 512 KiB and below pass.)
 * RPC (another channel of the same two peers):
 *   - unary round trip: R `echo` calls one after another (a small JSON message each way);
 *   - bulk: one server-streaming call that sends B MiB as 1 MiB messages (JSON strings), timed
 *     from the call until its status; and the same with 16 MiB messages.
 *
 * The peers advertise a max-message-size of 1 MiB so that the baseline's 256 KiB messages
 * pass (werift's default is 64 KiB); the RPC keeps its 64 KiB frames.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/rpc-<timestamp>.json. Exit 0 on success; 1 on any failure; 130 on
 * SIGINT.
 */
import { performance } from 'node:perf_hooks';
import {
  MAX_MESSAGE_BYTES,
  RpcClient,
  RpcServer,
  connectPeers,
  defineService,
  serverStream,
  unary,
  type DataChannelLike,
  type PeerDataChannel,
} from '@switchboard/rpc';
import { LOOPBACK_CONFIG, WeriftPeer, isLoopbackCandidate } from '@switchboard/rpc/werift';
import Type from 'typebox';
import {
  commandLine,
  log,
  runBench,
  stats,
  writeResults,
  type BenchRun,
  type Stats,
} from './lib/cli.ts';

const cli = commandLine('rpc', {
  rounds: { env: 'BENCH_ROUNDS', def: 2000, min: 10, help: 'sequential round trips of each kind' },
  mib: { env: 'BENCH_MIB', def: 64, min: 1, help: 'MiB of each bulk transfer' },
});

const MiB = 1024 * 1024;
const HIGH_WATER = MiB;
const LOW_WATER = 256 * 1024;
const STEP_TIMEOUT_MS = 300_000;

const Bench = defineService('switchboard.bench.Rpc', {
  echo: unary(Type.Object({ seq: Type.Integer() }), Type.Object({ seq: Type.Integer() })),
  download: serverStream(
    Type.Object({
      bytes: Type.Integer({ minimum: 1 }),
      messageBytes: Type.Integer({ minimum: 16 }),
    }),
    Type.String({ maxLength: MAX_MESSAGE_BYTES }),
  ),
});

// ------------------------------------------------------------------------------- peers

async function connected(
  run: BenchRun,
  label: string,
): Promise<{ offered: PeerDataChannel; answered: PeerDataChannel }> {
  const config = { ...LOOPBACK_CONFIG, maxMessageSize: MiB };
  const a = new WeriftPeer(config);
  const b = new WeriftPeer(config);
  run.cleanup.add(`close the ${label} peers`, async () => {
    await a.close();
    await b.close();
  });
  return await run.failure.guard(
    `connect the ${label} peers`,
    30_000,
    connectPeers(a, b, { label, filter: isLoopbackCandidate }),
  );
}

// ---------------------------------------------------------------------------- baseline

async function nextMessage(channel: DataChannelLike): Promise<void> {
  await new Promise<void>((resolve) => {
    const on = (): void => {
      channel.removeEventListener('message', on);
      resolve();
    };
    channel.addEventListener('message', on);
  });
}

async function rawRoundTrips(
  a: DataChannelLike,
  b: DataChannelLike,
  rounds: number,
): Promise<Stats | undefined> {
  const echo = (ev: { readonly data: unknown }): void => {
    b.send(new Uint8Array(ev.data as Uint8Array));
  };
  b.addEventListener('message', echo);
  const ping = new Uint8Array(32);
  const samples: number[] = [];
  for (let i = 0; i < rounds + 100; i++) {
    const t = performance.now();
    const back = nextMessage(a);
    a.send(ping);
    await back;
    if (i >= 100) samples.push(performance.now() - t);
  }
  b.removeEventListener('message', echo);
  return stats(samples);
}

/** One way, `messageBytes` at a time, pausing above HIGH_WATER; MB/s (10^6 bytes). */
async function rawBulk(
  a: DataChannelLike,
  b: DataChannelLike,
  bytes: number,
  messageBytes: number,
): Promise<number> {
  let got = 0;
  let onMessage: ((ev: { readonly data: unknown }) => void) | undefined;
  const arrived = new Promise<void>((resolve) => {
    onMessage = (ev) => {
      got += (ev.data as Uint8Array).byteLength;
      if (got >= bytes) resolve();
    };
    b.addEventListener('message', onMessage);
  });
  a.bufferedAmountLowThreshold = LOW_WATER;
  const message = new Uint8Array(messageBytes).fill(0x61);
  const started = performance.now();
  for (let sent = 0; sent < bytes; sent += messageBytes) {
    if (a.bufferedAmount >= HIGH_WATER) {
      await new Promise<void>((resolve) => {
        const on = (): void => {
          a.removeEventListener('bufferedamountlow', on);
          resolve();
        };
        a.addEventListener('bufferedamountlow', on);
      });
    }
    a.send(message);
  }
  await arrived;
  const seconds = (performance.now() - started) / 1000;
  if (onMessage !== undefined) b.removeEventListener('message', onMessage);
  return bytes / seconds / 1e6;
}

// --------------------------------------------------------------------------------- RPC

async function rpcRoundTrips(client: RpcClient, rounds: number): Promise<Stats | undefined> {
  const samples: number[] = [];
  for (let i = 0; i < rounds + 100; i++) {
    const t = performance.now();
    const reply = await client.unary(Bench.methods.echo, { seq: i });
    if (reply.seq !== i) throw new Error(`echo ${String(i)} came back as ${String(reply.seq)}`);
    if (i >= 100) samples.push(performance.now() - t);
  }
  return stats(samples);
}

/** MB/s of message bytes (their JSON), from the call until its status. */
async function rpcBulk(client: RpcClient, bytes: number, messageBytes: number): Promise<number> {
  const started = performance.now();
  let got = 0;
  for await (const s of client.serverStream(Bench.methods.download, { bytes, messageBytes })) {
    got += s.length + 2;
  }
  const seconds = (performance.now() - started) / 1000;
  if (got < bytes) throw new Error(`download: ${String(got)} of ${String(bytes)} bytes`);
  return got / seconds / 1e6;
}

// ------------------------------------------------------------------------------------ main

const ms = (s: Stats | undefined): string =>
  s === undefined ? '—' : `${s.p50.toFixed(3)} / ${s.p99.toFixed(3)}`;

await runBench(cli.usage, async (run) => {
  const flags = cli.parse();
  const opts = { rounds: flags.num('rounds'), mib: flags.num('mib') };
  const bytes = opts.mib * MiB;
  const startedAt = new Date();

  const raw = await connected(run, 'raw');
  const guard = async <T>(what: string, work: Promise<T>): Promise<T> => {
    log(what);
    return await run.failure.guard(what, STEP_TIMEOUT_MS, work);
  };
  const rawRtt = await guard(
    `raw round trips (${String(opts.rounds)})`,
    rawRoundTrips(raw.offered.channel, raw.answered.channel, opts.rounds),
  );
  const rawBulkLarge = await guard(
    `raw bulk, ${String(opts.mib)} MiB in 256 KiB messages`,
    rawBulk(raw.offered.channel, raw.answered.channel, bytes, 256 * 1024),
  );
  const rawBulk64K = await guard(
    `raw bulk, ${String(opts.mib)} MiB in 64 KiB messages`,
    rawBulk(raw.offered.channel, raw.answered.channel, bytes, 64 * 1024),
  );

  const rpc = await connected(run, 'rpc');
  const served = new RpcServer({
    onError: (err, method) => {
      run.failure.fail(new Error(`${method} failed`, { cause: err }));
    },
  })
    .add(Bench, {
      echo: async (req) => req,
      async *download(req) {
        // A JSON string of messageBytes: quotes and (messageBytes - 2) characters.
        const message = 'b'.repeat(req.messageBytes - 2);
        for (let sent = 0; sent < req.bytes; sent += req.messageBytes) yield message;
      },
    })
    .serve(rpc.answered.channel, { maxMessageSize: rpc.answered.maxMessageSize });
  const client = new RpcClient(rpc.offered.channel, { maxMessageSize: rpc.offered.maxMessageSize });
  run.cleanup.add('close the RPC client and server', async () => {
    client.close();
    served.close();
  });
  const rpcRtt = await guard(
    `RPC unary round trips (${String(opts.rounds)})`,
    rpcRoundTrips(client, opts.rounds),
  );
  const rpcBulk1M = await guard(
    `RPC server stream, ${String(opts.mib)} MiB in 1 MiB messages`,
    rpcBulk(client, bytes, MiB),
  );
  const rpcBulk16M = await guard(
    `RPC server stream, ${String(opts.mib)} MiB in 16 MiB messages`,
    rpcBulk(client, bytes, MAX_MESSAGE_BYTES),
  );
  run.failure.check();

  const ratio = (x: number | undefined, base: number | undefined): string =>
    x === undefined || base === undefined ? '—' : `${(x / base).toFixed(2)}×`;
  // Each RPC figure beside the channel sending messages of the RPC's frame size (64 KiB),
  // and beside larger channel messages (256 KiB).
  const rows = [
    ['measure', 'data channel', 'RPC', 'RPC / channel'],
    [
      'round trip, ms (p50 / p99)',
      ms(rawRtt),
      ms(rpcRtt),
      `${ratio(rpcRtt?.p50, rawRtt?.p50)} / ${ratio(rpcRtt?.p99, rawRtt?.p99)}`,
    ],
    [
      'MB/s: 64 KiB msgs | 1 MiB RPC msgs',
      rawBulk64K.toFixed(1),
      rpcBulk1M.toFixed(1),
      ratio(rpcBulk1M, rawBulk64K),
    ],
    [
      'MB/s: 64 KiB msgs | 16 MiB RPC msgs',
      rawBulk64K.toFixed(1),
      rpcBulk16M.toFixed(1),
      ratio(rpcBulk16M, rawBulk64K),
    ],
    [
      'MB/s: 256 KiB msgs | 1 MiB RPC msgs',
      rawBulkLarge.toFixed(1),
      rpcBulk1M.toFixed(1),
      ratio(rpcBulk1M, rawBulkLarge),
    ],
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const text = [
    `RPC over a werift data channel beside the bare channel (127.0.0.1; ${String(opts.rounds)} round trips, ${String(opts.mib)} MiB bulk)`,
    ...rows.map((r) => `  ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('   ')}`),
    `  largest bufferedAmount left by the RPC server: ${String(served.maxBufferedAmount)} bytes`,
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  writeResults('rpc', startedAt, {
    options: opts,
    baseline: { roundTripMs: rawRtt, bulkMBps256KiB: rawBulkLarge, bulkMBps64KiB: rawBulk64K },
    rpc: {
      unaryRoundTripMs: rpcRtt,
      serverStreamMBps1MiBMessages: rpcBulk1M,
      serverStreamMBps16MiBMessages: rpcBulk16M,
      maxBufferedAmount: served.maxBufferedAmount,
    },
    text,
  });
  return 0;
});
