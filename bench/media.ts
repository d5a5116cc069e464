/**
 * `./run bench media [-- flags]`: SFU forwarding. A synthetic RTP sender (`lib/rtp-sender.ts`:
 * VP8 at --bitrate, optionally Opus) feeds one producer; N consumers, each on its own
 * PlainTransport, forward to N UDP sinks (`lib/udp-sink.ts`), all on one mediasoup worker.
 * For each N of --consumers and each scenario: set up, start the sender (its first frame is a
 * key frame), wait --warmup seconds, then measure over --seconds: packets per second in and
 * out, the CPU of the processes that forward (user + system, from /proc), CPU per consumer
 * and per forwarded packet; then stop, drain, and count delivery over the whole run
 * (packets the sinks got / packets sent × N) and where any loss happened.
 *
 * Scenarios (`lib/media-scenario.ts`, registered in SCENARIOS below): "bare", mediasoup driven
 * from this process (`lib/media-bare.ts`), the baseline every other scenario is compared with
 * in the same run (measurements interleaved: for each N, every scenario).
 *
 * Each scenario runs with each protection of --srtp: plain RTP, and SRTP in mediasoup's two
 * first suites (AES_CM_128_HMAC_SHA1_80, AEAD_AES_256_GCM) on every transport, the sender
 * encrypting as a browser does (@switchboard/devstack's SrtpSession). Consumers negotiate
 * transport-cc as a browser's do, so the SRTP rows are the load a browser room puts on a
 * worker. Each row compares its CPU per consumer with the bare scenario's (same protection)
 * and with its own scenario's plain RTP.
 *
 * Prints a table and writes it, with every figure, to
 * <ARTIFACTS_DIR>/bench/media-<timestamp>.json. Exit 0 on success; 1 on a failure or failed
 * check (a silent sink, a sender below 90% of its rate, a window that ran late; the results
 * are still written after a failed check); 2 on bad flags; 130 on SIGINT. `--help` lists the
 * flags (each also read from an environment variable).
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { SrtpSession, randomSrtpKeys, type SrtpSuite } from '@switchboard/devstack';
import { setTimeout as sleep } from 'node:timers/promises';
import { BareScenario } from './lib/media-bare.ts';
import { PlatformScenario } from './lib/media-platform.ts';
import type { Scenario, StreamSpec } from './lib/media-scenario.ts';
import { machineCpuMs } from './lib/proc-cpu.ts';
import {
  RtpSender,
  defaultVideo,
  deltaFrameBytes,
  packetsPerFrame,
  type RtpSenderCounts,
  type RtpSenderOptions,
} from './lib/rtp-sender.ts';
import { UdpSinks } from './lib/udp-sink.ts';
import {
  UsageError,
  commandLine,
  errMessage,
  finishRun,
  log,
  machineLine,
  usageExitCode,
} from './lib/cli.ts';

// ------------------------------------------------------------------------------- options

const SCENARIOS: Record<string, () => Scenario> = {
  bare: () => new BareScenario(),
  platform: () => new PlatformScenario(),
};

/** Plain RTP, or SRTP in one suite. */
type Protection = 'rtp' | SrtpSuite;
const PROTECTIONS: readonly Protection[] = ['rtp', 'AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_256_GCM'];
/** A protection's short name, in the report. */
const PROTECTION_LABEL: Record<Protection, string> = {
  rtp: 'RTP',
  AES_CM_128_HMAC_SHA1_80: 'SRTP AES-CM',
  AEAD_AES_256_GCM: 'SRTP GCM',
};

interface Options {
  consumers: number[];
  srtp: Protection[];
  seconds: number;
  warmup: number;
  bitrate: number;
  fps: number;
  keyFrameInterval: number;
  audio: boolean;
  scenarios: string[];
}

const DEFAULT_CONSUMERS = [1, 10, 50, 100, 200];

const FLAGS = {
  consumers: {
    type: 'string',
    env: 'BENCH_CONSUMERS',
    def: DEFAULT_CONSUMERS.join(','),
    help: 'consumer counts to measure, comma-separated',
  },
  seconds: { env: 'BENCH_SECONDS', def: 5, min: 1, help: 'length of the measurement window, s' },
  warmup: { env: 'BENCH_WARMUP', def: 1, min: 0.5, help: 'sending before the window, s' },
  bitrate: { env: 'BENCH_BITRATE', def: 1_500_000, min: 10_000, help: 'video bits per second' },
  fps: { env: 'BENCH_FPS', def: 30, min: 1, help: 'video frames per second' },
  'keyframe-interval': {
    env: 'BENCH_KEYFRAME_INTERVAL',
    def: 2,
    min: 0,
    help: 'seconds between key frames (0: the first and those asked for by PLI only)',
  },
  audio: {
    type: 'boolean',
    env: 'BENCH_AUDIO',
    help: 'also an Opus stream, 20 ms packets at 64 kbit/s',
  },
  scenarios: {
    type: 'string',
    env: 'BENCH_SCENARIOS',
    def: 'all',
    help: `comma-separated, of: ${Object.keys(SCENARIOS).join(', ')}`,
  },
  srtp: {
    type: 'string',
    env: 'BENCH_SRTP',
    def: 'all',
    help: `protections, comma-separated, of: ${PROTECTIONS.join(', ')}`,
  },
} as const;

/** The numeric flags take any finite number (--warmup 0.5). */
const cli = commandLine('media', FLAGS, 'number');

function parseOptions(): Options {
  const flags = cli.parse();
  const list = (raw: string | undefined): string[] | undefined =>
    raw === undefined || raw.trim() === ''
      ? undefined
      : raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
  const consumers = (list(flags.str('consumers')) ?? []).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 5000)
      throw new UsageError(`--consumers: not an integer from 1 to 5000: ${s}`);
    return n;
  });
  const srtp = list(flags.str('srtp')) ?? [...PROTECTIONS];
  for (const p of srtp)
    if (!(PROTECTIONS as readonly string[]).includes(p))
      throw new UsageError(`--srtp: unknown protection ${p} (${PROTECTIONS.join(', ')})`);
  const scenarios = list(flags.str('scenarios')) ?? Object.keys(SCENARIOS);
  for (const s of scenarios)
    if (!(s in SCENARIOS))
      throw new UsageError(
        `--scenarios: unknown scenario ${s} (${Object.keys(SCENARIOS).join(', ')})`,
      );
  return {
    consumers:
      consumers.length > 0 ? [...new Set(consumers)].sort((a, b) => a - b) : DEFAULT_CONSUMERS,
    // In PROTECTIONS' order: plain RTP first, the baseline of the SRTP rows.
    srtp: PROTECTIONS.filter((p) => srtp.includes(p)),
    seconds: flags.num('seconds'),
    warmup: flags.num('warmup'),
    bitrate: flags.num('bitrate'),
    fps: flags.num('fps'),
    keyFrameInterval: flags.num('keyframe-interval'),
    audio: flags.on('audio'),
    scenarios,
  };
}

// ------------------------------------------------------------------------------- helpers

const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

const VIDEO_SSRC = 0x1111_0001;
const AUDIO_SSRC = 0x2222_0001;

function streamSpecs(opts: Options): StreamSpec[] {
  const video: StreamSpec = {
    kind: 'video',
    mimeType: 'video/VP8',
    clockRate: 90_000,
    payloadType: 101,
    ssrc: VIDEO_SSRC,
    rtcpFeedback: [
      { type: 'nack' },
      { type: 'nack', parameter: 'pli' },
      { type: 'ccm', parameter: 'fir' },
    ],
  };
  const audio: StreamSpec = {
    kind: 'audio',
    mimeType: 'audio/opus',
    clockRate: 48_000,
    channels: 2,
    payloadType: 100,
    ssrc: AUDIO_SSRC,
    rtcpFeedback: [],
  };
  return opts.audio ? [video, audio] : [video];
}

function senderOptions(
  opts: Options,
  target: { ip: string; port: number },
  protect: ((rtp: Buffer) => Buffer) | undefined,
): RtpSenderOptions {
  return {
    target,
    ...(protect === undefined ? {} : { protect }),
    video: defaultVideo({
      ssrc: VIDEO_SSRC,
      bitrate: opts.bitrate,
      fps: opts.fps,
      keyFrameIntervalS: opts.keyFrameInterval,
    }),
    ...(opts.audio ? { audio: { payloadType: 100, ssrc: AUDIO_SSRC, payloadBytes: 160 } } : {}),
  };
}

/** Packets per second the sender should send, on average. */
function targetPps(opts: Options): number {
  const v = defaultVideo({
    bitrate: opts.bitrate,
    fps: opts.fps,
    keyFrameIntervalS: opts.keyFrameInterval,
  });
  const gop = v.keyFrameIntervalS > 0 ? Math.max(1, Math.round(v.keyFrameIntervalS * v.fps)) : 0;
  const delta = deltaFrameBytes(v);
  const deltaPackets = packetsPerFrame(delta, v.maxPacketBytes);
  const keyPackets = packetsPerFrame(Math.round(delta * v.keyFrameScale), v.maxPacketBytes);
  const videoPps =
    gop === 0 ? deltaPackets * v.fps : ((deltaPackets * (gop - 1) + keyPackets) / gop) * v.fps;
  return videoPps + (opts.audio ? 50 : 0);
}

function sentPackets(c: RtpSenderCounts): number {
  return c.video.packets + c.audio.packets;
}

// ------------------------------------------------------------------------------ measuring

interface Measurement {
  scenario: string;
  protection: Protection;
  consumers: number;
  /**
   * RTP packets per second, sent by the sender and received by all sinks together, over the
   * whole sending time (the sinks drained): exact, whereas over the window a sink that reads
   * late, or a frame in flight at an edge, shifts packets out of it.
   */
  ppsIn: number;
  ppsOut: number;
  /** mediasoup's bandwidth probes the sinks got (not media; not in ppsOut), per second. */
  ppsProbes: number;
  sendSeconds: number;
  /** The measurement window (CPU), and the packet rates within it. */
  window: { seconds: number; ppsIn: number; ppsOut: number; delivered: number };
  /** CPU of the forwarding processes, % of one core, and by process. */
  cpuPercent: number;
  cpuPercentBy: Record<string, number>;
  cpuPercentPerConsumer: number;
  /** CPU µs per media packet forwarded (the window's CPU over ppsOut × its length). */
  cpuUsPerPacketOut: number;
  /** Slope from the previous consumer count: Δ CPU % / Δ N (undefined for the first). */
  marginalCpuPercentPerConsumer: number | undefined;
  /** This process (the sender and the sinks): CPU % of one core, event loop busy %. */
  loadGenerator: { cpuPercent: number; loopBusyPercent: number };
  /** The whole machine: busy CPU summed over cores, % of one core (at most cores × 100). */
  machineBusyPercent: number;
  /** From the sender's start to the end (after a drain), whole-run counts. */
  totals: {
    sent: number;
    keyFrames: number;
    pliReceived: number;
    firReceived: number;
    producerReceived: number | undefined;
    consumersSent: number | undefined;
    sinksReceived: number;
    sinksProbes: number;
    /** Sinks' sequence-number spans: what the consumers sent that the sinks should have got. */
    sinksExpectedBySeq: number;
    silentSinks: number;
    /** Datagrams the kernel dropped at the sinks (their receive buffers were full). */
    sinkKernelDrops: number | undefined;
    sinkRecvBufferBytes: number | undefined;
    perSinkMin: number;
    perSinkMax: number;
    /** sinksReceived / (sent × N): every consumer forwards from the first (key) frame on. */
    delivered: number;
  };
  setupSeconds: number;
  /** How long the CPU readings at the window's start and end took (round trips). */
  cpuReadMs: [number, number];
  sendErrors: number;
  lateTicks: number;
}

interface Snapshot {
  t: number;
  cpuReadMs: number;
  sent: number;
  received: number;
  probes: number;
  cpu: Record<string, number>;
  self: NodeJS.CpuUsage;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  machine: ReturnType<typeof machineCpuMs>;
}

async function measure(
  scenario: Scenario,
  protection: Protection,
  n: number,
  opts: Options,
  signal: AbortSignal,
  anomalies: string[],
  previous: Measurement | undefined,
): Promise<Measurement> {
  const tag = `${scenario.name} ${PROTECTION_LABEL[protection]} N=${String(n)}`;
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const t0 = performance.now();
    const sinks = await UdpSinks.open(n);
    cleanups.push(async () => {
      await sinks.close();
    });
    const keys = protection === 'rtp' ? undefined : randomSrtpKeys(protection);
    const run = await scenario.setup({
      sinks: sinks.addresses,
      streams: streamSpecs(opts),
      srtp: keys,
    });
    cleanups.push(async () => {
      await run.teardown();
    });
    const setupSeconds = (performance.now() - t0) / 1000;
    signal.throwIfAborted();
    const session = keys === undefined ? undefined : new SrtpSession(keys);
    const sender = await RtpSender.open(
      senderOptions(
        opts,
        run.producerTarget,
        session === undefined ? undefined : (rtp) => session.protect(rtp),
      ),
    );
    cleanups.push(async () => {
      await sender.close();
    });
    log(
      `${tag}: set up in ${setupSeconds.toFixed(2)} s; sending to ${run.producerTarget.ip}:${run.producerTarget.port}`,
    );
    const sendStart = performance.now();
    sender.start();
    await sleep(opts.warmup * 1000, undefined, { signal });

    const snap = async (): Promise<Snapshot> => {
      // The CPU reading may be a round trip (bare reads /proc; another scenario may have to
      // ask); the counts are taken together, synchronously, as soon as it is back. How long
      // it took says whether the window's edges are sharp.
      const t0 = performance.now();
      const cpu = await run.cpuTimeMs();
      const t = performance.now();
      const totals = sinks.totals();
      return {
        t,
        cpuReadMs: t - t0,
        sent: sentPackets(sender.counts()),
        received: totals.rtpPackets,
        probes: totals.probePackets,
        cpu,
        self: process.cpuUsage(),
        elu: performance.eventLoopUtilization(),
        machine: machineCpuMs(),
      };
    };
    const a = await snap();
    await sleep(opts.seconds * 1000, undefined, { signal });
    const b = await snap();
    sender.stop();
    const sendSeconds = (performance.now() - sendStart) / 1000;
    // Let what is in flight arrive: until the sinks' count stands still for 100 ms (2 s at most).
    let settled = 0;
    for (let last = -1, i = 0; i < 40 && settled < 2; i++) {
      await sleep(50, undefined, { signal });
      const now = sinks.totals().rtpPackets;
      settled = now === last ? settled + 1 : 0;
      last = now;
    }

    const wallMs = b.t - a.t;
    const inPackets = b.sent - a.sent;
    const outPackets = b.received - a.received;
    const cpuPercentBy: Record<string, number> = {};
    let cpuMs = 0;
    for (const [name, ms] of Object.entries(b.cpu)) {
      const d = ms - (a.cpu[name] ?? 0);
      cpuMs += d;
      cpuPercentBy[name] = round((d / wallMs) * 100);
    }
    const cpuPercent = (cpuMs / wallMs) * 100;
    const selfCpuUs = b.self.user + b.self.system - (a.self.user + a.self.system);
    // os.cpus() times: summed over cores; their total advances by cores × wall time.
    const machineBusy =
      ((b.machine.busyMs - a.machine.busyMs) / Math.max(1, b.machine.totalMs - a.machine.totalMs)) *
      b.machine.cores;

    const counts = sender.counts();
    const sinkTotals = sinks.totals();
    const perSink = sinks.perSink();
    const ms = run.mediasoupCounts === undefined ? undefined : await run.mediasoupCounts();
    const sent = sentPackets(counts);
    const m: Measurement = {
      scenario: scenario.name,
      protection,
      consumers: n,
      ppsIn: round(sent / sendSeconds, 1),
      ppsOut: round(sinkTotals.rtpPackets / sendSeconds, 1),
      ppsProbes: round((b.probes - a.probes) / (wallMs / 1000), 1),
      sendSeconds: round(sendSeconds, 3),
      window: {
        seconds: round(wallMs / 1000, 3),
        ppsIn: round(inPackets / (wallMs / 1000), 1),
        ppsOut: round(outPackets / (wallMs / 1000), 1),
        delivered: round(inPackets === 0 ? 0 : outPackets / (inPackets * n), 5),
      },
      cpuPercent: round(cpuPercent),
      cpuPercentBy,
      cpuPercentPerConsumer: round(cpuPercent / n, 4),
      cpuUsPerPacketOut: round(
        sinkTotals.rtpPackets === 0
          ? NaN
          : (cpuMs * 1000) / ((sinkTotals.rtpPackets / sendSeconds) * (wallMs / 1000)),
      ),
      marginalCpuPercentPerConsumer:
        previous === undefined
          ? undefined
          : round((cpuPercent - previous.cpuPercent) / (n - previous.consumers), 4),
      loadGenerator: {
        cpuPercent: round((selfCpuUs / 1000 / wallMs) * 100, 1),
        loopBusyPercent: round(performance.eventLoopUtilization(b.elu, a.elu).utilization * 100, 1),
      },
      machineBusyPercent: round(machineBusy * 100, 1),
      totals: {
        sent,
        keyFrames: counts.video.keyFrames,
        pliReceived: counts.pli,
        firReceived: counts.fir,
        producerReceived: ms?.producerPackets,
        consumersSent: ms?.consumerPackets,
        sinksReceived: sinkTotals.rtpPackets,
        sinksProbes: sinkTotals.probePackets,
        sinksExpectedBySeq: sinkTotals.expectedBySeq,
        silentSinks: sinkTotals.silent,
        sinkKernelDrops: sinks.kernelDrops(),
        sinkRecvBufferBytes: sinks.recvBufferBytes,
        perSinkMin: Math.min(...perSink),
        perSinkMax: Math.max(...perSink),
        delivered: round(sent === 0 ? 0 : sinkTotals.rtpPackets / (sent * n), 5),
      },
      setupSeconds: round(setupSeconds, 3),
      cpuReadMs: [round(a.cpuReadMs, 1), round(b.cpuReadMs, 1)],
      sendErrors: counts.sendErrors,
      lateTicks: counts.lateTicks,
    };

    if (Math.max(a.cpuReadMs, b.cpuReadMs) > 50)
      anomalies.push(
        `${tag}: the CPU readings at the window's edges took ${round(a.cpuReadMs)} and ` +
          `${round(b.cpuReadMs)} ms: the forwarding process is overloaded, its CPU % is blurred`,
      );
    if (sinkTotals.silent > 0)
      anomalies.push(`${tag}: ${sinkTotals.silent} of ${n} sinks received no RTP at all`);
    const target = targetPps(opts);
    if (m.ppsIn < target * 0.9)
      anomalies.push(`${tag}: the sender managed ${m.ppsIn} pps of ${round(target, 1)}`);
    if (counts.sendErrors > 0)
      anomalies.push(`${tag}: ${counts.sendErrors} send errors (${errMessage(sender.lastError)})`);
    if (sinks.errors.length > 0)
      anomalies.push(
        `${tag}: sink socket errors: ${sinks.errors.map((e) => e.message).join('; ')}`,
      );
    log(
      `${tag}: in ${m.ppsIn} pps, out ${m.ppsOut} pps (delivered ${(m.totals.delivered * 100).toFixed(2)}%), ` +
        `CPU ${m.cpuPercent}% (${m.cpuPercentPerConsumer}%/consumer), this process ${m.loadGenerator.cpuPercent}%`,
    );
    return m;
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        anomalies.push(`${tag}: clean-up: ${errMessage(err)}`);
      }
    }
  }
}

/** Least squares of CPU % on N: the fixed (ingress) part and the part per consumer. */
function fit(
  ms: readonly Measurement[],
): { fixedPercent: number; perConsumerPercent: number } | undefined {
  if (ms.length < 2) return undefined;
  const xs = ms.map((m) => m.consumers);
  const ys = ms.map((m) => m.cpuPercent);
  const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
  const my = ys.reduce((s, y) => s + y, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  xs.forEach((x, i) => {
    sxy += (x - mx) * ((ys[i] ?? 0) - my);
    sxx += (x - mx) ** 2;
  });
  if (sxx === 0) return undefined;
  const slope = sxy / sxx;
  return { fixedPercent: round(my - slope * mx, 3), perConsumerPercent: round(slope, 4) };
}

// ---------------------------------------------------------------------------------- report

function table(rows: string[][], rightAlign: (col: number) => boolean): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (rightAlign(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** The results of one scenario with one protection. */
interface Variant {
  scenario: Scenario;
  protection: Protection;
  results: Measurement[];
  fit: ReturnType<typeof fit>;
}

const variantName = (v: Pick<Variant, 'scenario' | 'protection'>): string =>
  `${v.scenario.name} ${PROTECTION_LABEL[v.protection]}`;

function report(
  opts: Options,
  scenarios: readonly Scenario[],
  variants: readonly Variant[],
): string {
  const v = defaultVideo({
    bitrate: opts.bitrate,
    fps: opts.fps,
    keyFrameIntervalS: opts.keyFrameInterval,
  });
  const pct = (x: number, d = 1): string => `${x.toFixed(d)}%`;
  const ratio = (a: number | undefined, b: number | undefined): string =>
    a === undefined || b === undefined || b === 0 || !Number.isFinite(a / b)
      ? '—'
      : `${(a / b).toFixed(2)}×`;
  const base = scenarios[0]?.name ?? 'bare';
  const find = (scenario: string, protection: Protection, n: number): Measurement | undefined =>
    variants
      .find((x) => x.scenario.name === scenario && x.protection === protection)
      ?.results.find((m) => m.consumers === n);
  const rows: string[][] = [
    [
      'consumers',
      'scenario',
      'pps in',
      'pps out',
      'delivered',
      'CPU',
      'CPU/consumer',
      'marginal',
      'µs/pkt',
      `÷ ${base}`,
      '÷ RTP',
    ],
  ];
  for (const n of opts.consumers)
    for (const x of variants) {
      const m = x.results.find((r) => r.consumers === n);
      if (m === undefined) continue;
      const perConsumer = (r: Measurement | undefined): number | undefined =>
        r?.cpuPercentPerConsumer;
      rows.push([
        String(n),
        variantName(x),
        m.ppsIn.toFixed(0),
        m.ppsOut.toFixed(0),
        pct(m.totals.delivered * 100, 2),
        pct(m.cpuPercent),
        pct(m.cpuPercentPerConsumer, 3),
        m.marginalCpuPercentPerConsumer === undefined
          ? '—'
          : pct(m.marginalCpuPercentPerConsumer, 3),
        m.cpuUsPerPacketOut.toFixed(2),
        x.scenario.name === base
          ? '—'
          : ratio(m.cpuPercentPerConsumer, perConsumer(find(base, x.protection, n))),
        x.protection === 'rtp'
          ? '—'
          : ratio(m.cpuPercentPerConsumer, perConsumer(find(x.scenario.name, 'rtp', n))),
      ]);
    }
  const lines = table(rows, (i) => i !== 1);

  const notes: string[] = [];
  for (const x of variants) {
    if (x.fit !== undefined)
      notes.push(
        `${variantName(x)}: CPU ≈ ${x.fit.fixedPercent.toFixed(2)}% + ${x.fit.perConsumerPercent.toFixed(3)}% × consumers (least squares over every N)`,
      );
  }
  const load: string[] = [];
  for (const x of variants)
    for (const m of x.results)
      load.push(
        `${variantName(x)} N=${String(m.consumers)}: this process ${m.loadGenerator.cpuPercent}% ` +
          `(loop busy ${m.loadGenerator.loopBusyPercent}%), machine ${m.machineBusyPercent.toFixed(0)}%, ` +
          `probes ${m.ppsProbes.toFixed(0)} pps`,
      );
  const losses: string[] = [];
  for (const x of variants)
    for (const m of x.results) {
      const t = m.totals;
      if (t.delivered >= 0.999) continue;
      losses.push(
        `${variantName(x)} N=${String(m.consumers)}: sent ${t.sent}; producer got ${t.producerReceived ?? '?'}; ` +
          `consumers sent ${t.consumersSent ?? '?'} of ${t.sent * m.consumers}; sinks got ${t.sinksReceived} ` +
          `(${pct(t.delivered * 100, 2)}; sequence gaps ${t.sinksExpectedBySeq - t.sinksReceived}, ` +
          `dropped by the kernel at the sinks ${t.sinkKernelDrops ?? '?'})`,
      );
    }

  return [
    `media forwarding benchmark: 1 sender → ${opts.audio ? '2 producers (VP8 + Opus)' : '1 VP8 producer'} → N consumers on one mediasoup worker, ` +
      `each consumer on its own PlainTransport to its own UDP sink`,
    `video ${opts.bitrate / 1000} kbit/s, ${opts.fps} fps, delta frames ${deltaFrameBytes(v)} B ` +
      `(${packetsPerFrame(deltaFrameBytes(v), v.maxPacketBytes)} packets of ≤ ${v.maxPacketBytes} B), key frames ×${v.keyFrameScale} ` +
      (opts.keyFrameInterval > 0 ? `every ${opts.keyFrameInterval} s` : 'on PLI only') +
      `${opts.audio ? '; Opus 64 kbit/s, 20 ms' : ''}; ~${targetPps(opts).toFixed(0)} pps in; ` +
      `${opts.warmup} s warm-up, ${opts.seconds} s window`,
    machineLine(),
    ...scenarios.map((x) => `${x.name}: ${x.description}`),
    `protections: ${opts.srtp.map((p) => `${PROTECTION_LABEL[p]}${p === 'rtp' ? ' (plain)' : ` (${p}, every transport; the sender encrypts)`}`).join(', ')}`,
    '',
    ...lines,
    '',
    ...notes,
    'CPU: user + system time of the processes that forward (bare: the worker, all threads, from',
    '/proc schedstat), % of one core over the window.',
    'marginal: Δ CPU / Δ consumers from the previous row. µs/pkt: CPU time per media packet out.',
    `÷ ${base}: CPU per consumer over ${base}'s with the same protection; ÷ RTP: over the same`,
    "scenario's with plain RTP (the SRTP goal: at most 1.3×).",
    'delivered: media packets the sinks got / (packets sent × consumers), whole run (drained).',
    'Per run: CPU of the sender and sinks (this process), of the whole machine (of ' +
      `${os.cpus().length * 100}%) and mediasoup's bandwidth probes (transport-cc is negotiated, ` +
      'as by browsers; no feedback comes back; not media, not in pps out):',
    ...load.map((l) => `  ${l}`),
    ...(losses.length > 0
      ? ['whole-run counts where delivery was below 99.9%:', ...losses.map((l) => `  ${l}`)]
      : []),
  ].join('\n');
}

// ------------------------------------------------------------------------------------ main

async function main(
  signal: AbortSignal,
  anomalies: string[],
  started: Scenario[],
): Promise<number> {
  const opts = parseOptions();
  const startedAt = new Date();
  const scenarios = opts.scenarios.map((name) => {
    const make = SCENARIOS[name];
    if (make === undefined) throw new UsageError(`unknown scenario ${name}`);
    return make();
  });
  for (const s of scenarios) {
    log(`${s.name}: starting (${s.description})`);
    started.push(s);
    await s.start();
  }
  const variants: Variant[] = scenarios.flatMap((scenario) =>
    opts.srtp.map((protection) => ({ scenario, protection, results: [], fit: undefined })),
  );
  // Interleaved (for each N, every scenario and protection) so that drift in the machine hits
  // all alike.
  for (const n of opts.consumers)
    for (const x of variants)
      x.results.push(
        await measure(x.scenario, x.protection, n, opts, signal, anomalies, x.results.at(-1)),
      );
  for (const x of variants) x.fit = fit(x.results);

  const text = report(opts, scenarios, variants);
  const v = defaultVideo({
    bitrate: opts.bitrate,
    fps: opts.fps,
    keyFrameIntervalS: opts.keyFrameInterval,
  });
  const of = (
    s: Scenario,
    p: Protection,
  ): { fit: Variant['fit'] | null; results: Measurement[] } => {
    const x = variants.find((y) => y.scenario === s && y.protection === p);
    return { fit: x?.fit ?? null, results: x?.results ?? [] };
  };
  return finishRun(
    'media',
    startedAt,
    { text, anomalies },
    {
      options: opts,
      sender: {
        video: v,
        deltaFrameBytes: deltaFrameBytes(v),
        targetPps: round(targetPps(opts), 1),
      },
      // Per scenario: plain RTP's fit and results where they always were, each SRTP suite's
      // under `srtp`.
      scenarios: Object.fromEntries(
        scenarios.map((s) => [
          s.name,
          {
            description: s.description,
            info: s.info(),
            ...of(s, 'rtp'),
            srtp: Object.fromEntries(
              opts.srtp.filter((p) => p !== 'rtp').map((p) => [p, of(s, p)]),
            ),
          },
        ]),
      ),
    },
  );
}

const abort = new AbortController();
const anomalies: string[] = [];
const startedScenarios: Scenario[] = [];
let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (++interrupts > 1) process.exit(130);
    log(`${sig}: stopping (again to exit at once)`);
    abort.abort(new Error(`interrupted by ${sig}`));
  });
}

let code: number;
try {
  code = await main(abort.signal, anomalies, startedScenarios);
} catch (err) {
  const usageCode = usageExitCode(err, cli.usage);
  if (usageCode !== undefined) {
    code = usageCode;
  } else if (abort.signal.aborted) {
    code = 130;
  } else {
    log(`FAILED: ${errMessage(err)}`);
    for (const a of anomalies.slice(0, 20)) log(`failed check: ${a}`);
    code = 1;
  }
}
for (const s of startedScenarios.reverse()) {
  try {
    await s.close();
  } catch (err) {
    log(`clean-up: ${s.name}: ${errMessage(err)}`);
    if (code === 0) code = 1;
  }
}
process.exit(code);
