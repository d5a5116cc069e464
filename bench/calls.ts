/**
 * Calls to hosts from a browser: Chromium (native WebRTC, the SDK's signIn/call) calls a
 * werift host through two gateways (caller on A, host on B), against the same two endpoints
 * connected by hand over the room protocol's exchangeSdp/exchangeCandidate relay (both in one
 * room through the same gateways), in the same run:
 *
 *   set-up  callHost sent → data channel open, vs exchangeSdp(offer) sent → channel open
 *   RTT     an RPC unary (Agent.ping) vs a 16-byte message echoed on the raw channel
 *   MB/s    an RPC echo of a big message (out and back) vs the same bytes echoed in 64 KiB
 *           messages on the raw channel (both ways counted)
 *
 *   ./run bench calls [-- --calls 30 --rtts 300 --mib 8]   (`--help` lists the flags)
 */
import os from 'node:os';
import { chromium, type Browser } from 'playwright-core';
import { mintToken, uniquePrefix } from '@switchboard/devstack';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../test/e2e/chromium.ts';
import { HOSTS_CHROMIUM_FLAGS, inPage, serveHostsPage } from '../test/e2e/hosts-page.ts';
import { roomEchoPeer, serveNodeHost, wsUrl } from '../test/e2e/hosts-fixtures.ts';
import { commandLine, log, runBench, stats, writeResults, type Stats } from './lib/cli.ts';
import { RunServices, benchInfra } from './lib/infra.ts';

const cli = commandLine('calls', {
  calls: { env: 'BENCH_CALLS', def: 30, min: 1, help: 'measured set-ups of each kind' },
  rtts: { env: 'BENCH_CALLS_RTTS', def: 300, min: 1, help: 'measured round trips of each kind' },
  mib: { env: 'BENCH_CALLS_MIB', def: 8, min: 1, help: 'MiB of each echo, at most 15' },
});

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

await runBench(cli.usage, async (run) => {
  const flags = cli.parse();
  const calls = flags.num('calls');
  const rtts = flags.num('rtts');
  const mib = Math.min(15, flags.num('mib'));
  const startedAt = new Date();

  const infra = await benchInfra(run);
  const pages = await serveHostsPage();
  run.cleanup.add('stop the page server', async () => {
    await pages.close();
  });
  const env = { WS_ALLOWED_ORIGINS: new URL(pages.url).origin, LOG_LEVEL: 'info' };
  log('platform: rooms and two gateways');
  const services = new RunServices(run);
  const platform = await services.startPlatform(infra, {
    subjectPrefix: uniquePrefix('benchcalls'),
    names: ['rooms', 'gateway'],
    env,
    what: 'stop rooms and gateway A',
  });
  const gwA = platform.get('gateway');
  const gwB = await services.start(
    'gateway',
    { ...platform.env, ...env },
    'stop gateway B',
    'gateway-b',
  );
  await run.failure.guard('gateway B ready', 30_000, gwB.waitReady());

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...HOSTS_CHROMIUM_FLAGS],
  });
  run.cleanup.add('close Chromium', async () => {
    await browser.close();
  });
  const page = await browser.newPage();
  page.on('pageerror', (e) => {
    run.anomalies.push(`page: ${e.message}`);
  });
  await page.goto(pages.url);
  run.cleanup.add('close the page', async () => {
    await inPage(page, 'close').catch(() => undefined);
    await page.close();
  });

  // The host keeps a call until its peer fails: room for every call of the run.
  const hostToken = await mintToken({
    sub: 'bench-host',
    rooms: [],
    extra: { host: 'bench-host' },
  });
  const host = await serveNodeHost([wsUrl(gwB)], hostToken, { maxPeers: calls + 8 });
  run.cleanup.add('stop the host', async () => {
    await host.agent.close();
  });
  const callerToken = await mintToken({
    sub: 'bench-caller',
    rooms: [],
    extra: { call: ['bench-*'] },
  });
  await inPage(page, 'signIn', { urls: [wsUrl(gwA)], token: callerToken });

  const room = `calls-bench-${String(Date.now())}`;
  const echo = await roomEchoPeer(
    wsUrl(gwB),
    await mintToken({ sub: 'bench-echo', rooms: [room] }),
    room,
    (err) => {
      run.failure.fail(err);
    },
  );
  run.cleanup.add('leave the room (werift)', async () => {
    await echo.close();
  });
  await inPage(page, 'roomJoin', {
    wsUrl: wsUrl(gwA),
    bearer: await mintToken({ sub: 'bench-browser', rooms: [room] }),
    roomId: room,
  });

  // Set-up, alternating so drift on the machine hits both sides alike; one warm-up each.
  const sdkSetup: number[] = [];
  const roomSetup: number[] = [];
  for (let i = -1; i < calls; i++) {
    const a = await run.failure.guard(
      'a call',
      30_000,
      inPage(page, 'call', { host: 'bench-host', timeoutMs: 10_000 }),
    );
    const b = await run.failure.guard(
      'a room connection',
      30_000,
      inPage(page, 'roomConnect', echo.socketId),
    );
    if (i >= 0) {
      sdkSetup.push(a.setupMs);
      roomSetup.push(b.setupMs);
    }
  }
  log(`set-up: ${String(calls)} calls and ${String(calls)} room connections`);

  // Over the last call and the last raw channel: round trips, then bulk.
  await inPage(page, 'rpcRtt', 20);
  await inPage(page, 'rawRtt', 20);
  const rpcRtt = await run.failure.guard('RPC round trips', 60_000, inPage(page, 'rpcRtt', rtts));
  const rawRtt = await run.failure.guard('raw round trips', 60_000, inPage(page, 'rawRtt', rtts));
  const bytes = mib * 1024 * 1024;
  const rpcMs: number[] = [];
  const rawMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    rpcMs.push(await run.failure.guard('RPC echo', 60_000, inPage(page, 'rpcBulk', bytes - 11)));
    rawMs.push(await run.failure.guard('raw echo', 60_000, inPage(page, 'rawBulk', bytes)));
  }
  const mbps = (ms: number): number => (2 * bytes) / 1e6 / (ms / 1000);
  const best = (xs: number[]): number => Math.max(...xs.map(mbps));

  const s = {
    setupSdk: stats(sdkSetup) as Stats,
    setupRoom: stats(roomSetup) as Stats,
    rttRpc: stats(rpcRtt) as Stats,
    rttRaw: stats(rawRtt) as Stats,
  };
  const row = (what: string, sdk: number, base: number, unit: string): string =>
    `${what.padEnd(34)} ${`${round(sdk).toFixed(2)} ${unit}`.padStart(14)} ${`${round(base).toFixed(2)} ${unit}`.padStart(14)} ${`${round(sdk / base).toFixed(2)}×`.padStart(8)}`;
  const chromiumVersion = browser.version();
  const text = [
    `Calls to hosts: Chromium ${chromiumVersion} → werift host, through two gateways (${String(os.cpus().length)} cores)`,
    `${''.padEnd(34)} ${'SDK/RPC'.padStart(14)} ${'by hand'.padStart(14)} ${'ratio'.padStart(8)}`,
    row(`set-up p50 (n=${String(calls)})`, s.setupSdk.p50, s.setupRoom.p50, 'ms'),
    row(`set-up p99 (n=${String(calls)})`, s.setupSdk.p99, s.setupRoom.p99, 'ms'),
    row(`round trip p50 (n=${String(rtts)})`, s.rttRpc.p50, s.rttRaw.p50, 'ms'),
    row(`round trip p99 (n=${String(rtts)})`, s.rttRpc.p99, s.rttRaw.p99, 'ms'),
    row(`echo ${String(mib)} MiB both ways, best of 3`, best(rpcMs), best(rawMs), 'MB/s'),
    '',
    'SDK/RPC: callHost → channel open; Agent.ping; Agent.echo of one message.',
    'by hand: exchangeSdp(offer) → channel open over the room relay; 16 B echoed; 64 KiB messages echoed.',
  ].join('\n');
  process.stdout.write(`\n${text}\n`);
  writeResults('calls', startedAt, {
    machine: { chromium: chromiumVersion },
    options: { calls, rtts, mib },
    summary: {
      setupMs: {
        sdk: s.setupSdk,
        roomRelay: s.setupRoom,
        ratioP50: round(s.setupSdk.p50 / s.setupRoom.p50, 3),
      },
      roundTripMs: {
        rpcUnary: s.rttRpc,
        rawChannel: s.rttRaw,
        ratioP50: round(s.rttRpc.p50 / s.rttRaw.p50, 3),
      },
      echoMBps: {
        bytesEachWay: bytes,
        rpc: rpcMs.map((ms) => round(mbps(ms))),
        rawChannel: rawMs.map((ms) => round(mbps(ms))),
        ratioBest: round(best(rpcMs) / best(rawMs), 3),
      },
    },
    samples: { setupSdk: sdkSetup, setupRoom: roomSetup },
    failedChecks: run.anomalies,
    text,
  });
  return run.anomalies.length > 0 ? 1 : 0;
});
