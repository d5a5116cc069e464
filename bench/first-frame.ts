/**
 * `./run bench first-frame [-- flags]`: how long a browser takes from joining a room to the
 * first frame of another member's camera, through the whole platform (SFU), beside the same
 * two pages connected peer to peer (P2P) in the same run as the baseline.
 *
 * Platform: NATS and PostgreSQL (found or started), the rooms service, one gateway and one
 * media node (one mediasoup worker) as processes; Chromium headless with its fake camera and
 * microphone, every page in a browser context of its own.
 *
 * - SFU: a publisher page (test/e2e/pages/sfu.ts: the SDK on the gateway's /api)
 *   joins a room and sends its camera (two simulcast layers) and microphone. Then, --runs
 *   times, a fresh subscriber page joins the same room (it sends its own camera too, as the
 *   page does), waits for the publisher's video, and leaves (1000).
 * - P2P: per run a fresh pair of test/e2e/pages/p2p.ts pages in a fresh room: the publisher
 *   joins, then the subscriber joins and calls it (exchangeSdp / exchangeCandidate relayed by
 *   the same gateway), both sending camera and microphone, RTCPeerConnection on loopback.
 *
 * Measured in the subscriber page (bench/lib/first-frame-instrument.ts, an init script: the
 * pages run as they are) from its `join` frame being sent to the first frame of the
 * publisher's video presented (requestVideoFrameCallback on a <video> of the script's own that
 * plays the remote track from the moment it exists: exact, and the same on both paths), and to
 * the first decoded (inbound-rtp framesDecoded > 0, getStats polled every --poll-ms: late by up
 * to that); with milestones in between. The two paths alternate run by run (after --warmup
 * unmeasured runs of each), so that drift in the machine hits both alike. How busy the
 * machine's CPU was in the second before the start is printed (flagged above 15%): other work
 * shows in the figures.
 *
 * Prints a table and writes it, with every run, to <ARTIFACTS_DIR>/bench/first-frame-<time>.json.
 * Exit 0 on success; 1 when any run failed or timed out (--timeout-ms), or a page reported an
 * error (the results are still written); 2 on bad flags; 130 on SIGINT. `--help` lists the
 * flags (each also read from an environment variable).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintToken, uniquePrefix, type Infra, type Platform } from '@switchboard/devstack';
import type { JoinReply } from '@switchboard/protocol';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../test/e2e/chromium.ts';
import type { P2PGlobal } from '../test/e2e/pages/p2p.ts';
import type { SfuApi } from '../test/e2e/pages/sfu.ts';
import type { BenchRun, Failure } from './lib/cli.ts';
import {
  UsageError,
  columns,
  commandLine,
  errMessage,
  log,
  machineLine,
  runBench,
  stats,
  writeResults,
  type Stats,
} from './lib/cli.ts';
import {
  instrumentScript,
  type FfFrame,
  type FfGlobal,
  type FfPresented,
  type FfProbe,
  type FfState,
  type FfVideo,
  type FfWaitOptions,
  type FfWaitResult,
} from './lib/first-frame-instrument.ts';
import {
  chromium,
  servePages,
  type Browser,
  type BrowserContext,
  type Page,
} from './lib/first-frame-pages.ts';
import { BENCH_GATEWAY_ENV, RunServices, benchInfra, infraRecord } from './lib/infra.ts';

// ------------------------------------------------------------------------------- options

const PATHS = ['sfu', 'p2p'] as const;
type PathName = (typeof PATHS)[number];

interface Options {
  runs: number;
  warmup: number;
  timeoutMs: number;
  pollMs: number;
  pauseMs: number;
  paths: PathName[];
}

const cli = commandLine('first-frame', {
  runs: { env: 'BENCH_RUNS', def: 10, min: 1, help: 'measured runs of each path' },
  warmup: { env: 'BENCH_WARMUP', def: 1, min: 0, help: 'unmeasured runs of each path first' },
  'timeout-ms': {
    env: 'BENCH_TIMEOUT_MS',
    def: 15_000,
    min: 1000,
    help: 'limit of a run from its join to the first frame (and of each step around it)',
  },
  'poll-ms': { env: 'BENCH_POLL_MS', def: 20, min: 5, help: "the subscriber's getStats interval" },
  'pause-ms': { env: 'BENCH_PAUSE_MS', def: 300, min: 0, help: 'idle time between runs' },
  paths: {
    type: 'string',
    env: 'BENCH_PATHS',
    def: 'both',
    help: `comma-separated, of: ${PATHS.join(', ')}`,
  },
});

function parseOptions(): Options {
  const flags = cli.parse();
  const rawPaths = flags.str('paths') ?? '';
  const paths: PathName[] = [];
  for (const p of rawPaths.split(',').map((s) => s.trim())) {
    if (p === '') continue;
    const known = PATHS.find((x) => x === p);
    if (known === undefined)
      throw new UsageError(`--paths: unknown path ${p} (${PATHS.join(', ')})`);
    if (!paths.includes(known)) paths.push(known);
  }
  return {
    runs: flags.num('runs'),
    warmup: flags.num('warmup'),
    timeoutMs: flags.num('timeout-ms'),
    pollMs: flags.num('poll-ms'),
    pauseMs: flags.num('pause-ms'),
    paths: paths.length > 0 ? paths : [...PATHS],
  };
}

// ------------------------------------------------------------------------------- helpers

const round = (x: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** CPU time of all cores together (os.cpus()), ms: busy and in all. */
function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

/** The share (0–1) of all cores busy between two readings. */
function busyShare(a: { busy: number; total: number }, b: { busy: number; total: number }) {
  return (b.busy - a.busy) / Math.max(1, b.total - a.total);
}

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

/** Above this share of the machine's CPU busy before the start, the report says so. */
const BUSY_BEFORE = 0.15;

interface MachineLoad {
  /** Share of all cores busy in the second before anything started. */
  before: number;
  /** The same over the runs (this benchmark's own load included). */
  during: number;
  loadAverage1m: number;
}

// ------------------------------------------------------------------------------ platform

/** NATS, PostgreSQL, rooms, a gateway and a media node; returns the gateway's /api URL. */
async function startOwnPlatform(
  run: Pick<BenchRun, 'failure' | 'cleanup' | 'services'>,
  pageOrigin: string,
) {
  const services = new RunServices(run);
  const infra: Infra = await benchInfra(run);

  const subjectPrefix = uniquePrefix('benchff');
  const env: Record<string, string> = {
    ...BENCH_GATEWAY_ENV,
    WS_ALLOWED_ORIGINS: pageOrigin,
    MEDIASOUP_WORKERS: '1',
    // Not 'warn': ServiceProcess.start learns the port from the 'listening' line, logged at info.
    LOG_LEVEL: 'info',
  };
  log(`platform: starting rooms and a gateway (subjects under "${subjectPrefix}.")`);
  const platform: Platform = await services.startPlatform(infra, {
    subjectPrefix,
    names: ['rooms', 'gateway'],
    env,
    what: 'stop rooms and the gateway',
  });
  log('platform: starting a media node (one mediasoup worker)');
  const media = await services.start('media', { ...platform.env, ...env }, 'stop the media node');
  await run.failure.guard('media node ready', 60_000, media.waitReady());
  return {
    wsUrl: `ws://127.0.0.1:${String(platform.get('gateway').port)}/api`,
    setup: {
      ...infraRecord(infra),
      subjectPrefix,
      services: run.services.map((s) => ({ name: s.process.name, pid: s.process.child.pid })),
    },
  };
}

// --------------------------------------------------------------------------------- pages

/** What the pages expose (test/e2e/pages/sfu.ts, p2p.ts), for page.evaluate callbacks. */
interface SfuGlobal {
  sfu: SfuApi;
}

/** A page in a browser context of its own, with its uncaught errors and console errors. */
class BenchPage {
  readonly label: string;
  readonly context: BrowserContext;
  readonly page: Page;
  readonly errors: string[] = [];

  private constructor(label: string, context: BrowserContext, page: Page) {
    this.label = label;
    this.context = context;
    this.page = page;
    page.on('pageerror', (e) => this.errors.push(`${label}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') this.errors.push(`${label}: console: ${m.text()}`);
    });
  }

  static async open(
    browser: Browser,
    url: string,
    label: string,
    initScript: string,
    ready: 'sfu' | 'startP2P',
  ): Promise<BenchPage> {
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    try {
      await context.addInitScript({ content: initScript });
      const page = await context.newPage();
      const p = new BenchPage(label, context, page);
      await page.goto(url);
      await page.waitForFunction((name) => name in globalThis, ready, { polling: 20 });
      return p;
    } catch (err) {
      await context.close().catch(() => undefined);
      throw err;
    }
  }

  /** Close the page's WebSockets normally (1000: the sessions end now), then the context. */
  async close(): Promise<void> {
    if (!this.page.isClosed()) {
      await Promise.race([
        this.page
          .evaluate(async () => {
            await (globalThis as unknown as Partial<FfGlobal>).__ffClose?.();
          })
          .catch(() => undefined),
        sleep(2000),
      ]);
    }
    await this.context.close();
  }
}

// ---------------------------------------------------------------------------------- runs

/** Milestones of a run: ms after the subscriber sent `join` (null: not seen). */
type Milestones = Record<string, number | null>;

/** The milestones, in about the order they come, and the paths that have each. */
const MILESTONES: { key: string; label: string; paths: readonly PathName[] }[] = [
  { key: 'joinR', label: 'joinR received', paths: PATHS },
  { key: 'offerSent', label: 'offer sent (exchangeSdp)', paths: ['p2p'] },
  { key: 'recvTransport', label: 'receiving transport created', paths: ['sfu'] },
  {
    key: 'signaled',
    label: 'SFU: eventNewConsumer (video) in; P2P: answer in',
    paths: PATHS,
  },
  { key: 'resumeSent', label: 'resumeConsumer sent', paths: ['sfu'] },
  { key: 'resumed', label: 'resumeConsumer replied', paths: ['sfu'] },
  { key: 'trackAdded', label: 'remote video track added', paths: PATHS },
  { key: 'connected', label: 'peer connection connected', paths: PATHS },
  { key: 'firstPacket', label: 'first video packet (polled)', paths: PATHS },
  { key: 'frameReceived', label: "first frame's last packet (rVFC)", paths: PATHS },
  { key: 'decoded', label: 'first frame decoded (polled)', paths: PATHS },
  { key: 'presented', label: 'first frame presented (rVFC)', paths: PATHS },
  { key: 'pageShown', label: "first frame on the page's own <video>", paths: PATHS },
];

interface RunRecord {
  path: PathName;
  /** 1-based among the measured runs; the warm-up runs before them: 0, -1, … */
  index: number;
  warmup: boolean;
  ok: boolean;
  error?: string;
  /** The headline: the subscriber's `join` sent → first frame of the publisher presented. */
  joinToPresentedMs?: number | null;
  /** The same to the first decoded frame, polled. */
  joinToDecodedMs?: number;
  wsOpenToPresentedMs?: number | null;
  wsOpenToDecodedMs?: number;
  milestones?: Milestones;
  /** The first decoded frame's size and the decoder (getStats); the first presented one's. */
  video?: { width?: number; height?: number; decoder?: string; presented?: string };
  /** SFU: the page's own figure (its firstFrameAt, polled every 50 ms) from its connect. */
  pageFirstFrameFromWsOpenMs?: number | null;
  /** Members already in the room when the subscriber joined (expected: the publisher only). */
  others?: number;
  polls?: { count: number; meanMs: number };
  /** The subscriber's WebSocket frames up to the first frame: "+ms dir action". */
  timeline?: string[];
  /**
   * The raw records, times in ms after join: inbound video streams by SSRC (polled), the
   * script's <video> probes, the page's own <video> elements.
   */
  raw?: { video: Record<string, FfVideo>; probes: FfProbe[]; pageVideos: FfPresented[] };
  errors: string[];
}

function findFrame(s: FfState, p: (f: FfFrame) => boolean): FfFrame | undefined {
  return s.frames.find(p);
}

/** The reply to the request `out` (same id). */
function replyTo(s: FfState, out: FfFrame | undefined): FfFrame | undefined {
  if (out?.id === undefined) return undefined;
  return findFrame(s, (f) => f.dir === 'in' && f.id === out.id && f.a === `${out.a}R`);
}

/** The instrumentation's raw records with their times made relative to the `join` frame. */
function rawRelative(s: FfState): RunRecord['raw'] {
  const t0 = s.frames.find((f) => f.dir === 'out' && f.a === 'join')?.t ?? 0;
  const rel = (t: number | null): number | null => (t === null ? null : round(t - t0, 2));
  return {
    video: Object.fromEntries(
      Object.entries(s.video).map(([k, v]) => [
        k,
        {
          ...v,
          firstSeen: rel(v.firstSeen) ?? NaN,
          firstPacket: rel(v.firstPacket),
          firstDecoded: rel(v.firstDecoded),
        },
      ]),
    ),
    probes: s.probes.map((p) => ({
      ...p,
      trackAt: rel(p.trackAt) ?? NaN,
      presentationTime: rel(p.presentationTime),
      receiveTime: rel(p.receiveTime),
    })),
    pageVideos: s.presented.map((p) => ({
      ...p,
      t: rel(p.t) ?? NaN,
      presentationTime: rel(p.presentationTime) ?? NaN,
      expectedDisplayTime: rel(p.expectedDisplayTime) ?? NaN,
      receiveTime: rel(p.receiveTime),
    })),
  };
}

interface Analysis {
  timeline: string[];
  milestones: Milestones;
  wsOpenToDecodedMs: number;
  wsOpenToPresentedMs: number | null;
  video: FfVideo;
  consumerId: string | null;
  presentedSize: string | undefined;
  others: number;
}

/** Milestones from the subscriber's instrumentation; `from`: the publisher (SFU), or null. */
function analyse(path: PathName, s: FfState, publisher: string): Analysis {
  const join = findFrame(s, (f) => f.dir === 'out' && f.a === 'join');
  if (join === undefined) throw new Error('the subscriber sent no join');
  const joinR = replyTo(s, join);
  if (joinR?.s !== true) throw new Error('no successful joinR');
  const rel = (t: number | null | undefined): number | null =>
    t === null || t === undefined ? null : round(t - join.t, 2);
  const m: Milestones = { joinR: rel(joinR.t) };
  let ssrc: string | undefined;
  let consumerId: string | null = null;
  if (path === 'sfu') {
    const createRecv = findFrame(
      s,
      (f) => f.dir === 'out' && f.a === 'createWebRtcTransport' && f.direction === 'recv',
    );
    m['recvTransport'] = rel(replyTo(s, createRecv)?.t);
    const announced = findFrame(
      s,
      (f) =>
        f.dir === 'in' && f.a === 'eventNewConsumer' && f.kind === 'video' && f.from === publisher,
    );
    if (announced?.ssrc === undefined) throw new Error("no consumer of the publisher's video");
    consumerId = announced.consumerId ?? null;
    m['signaled'] = rel(announced.t);
    const resume = findFrame(
      s,
      (f) => f.dir === 'out' && f.a === 'resumeConsumer' && f.consumerId === consumerId,
    );
    m['resumeSent'] = rel(resume?.t);
    m['resumed'] = rel(replyTo(s, resume)?.t);
    ssrc = String(announced.ssrc);
  } else {
    const offer = findFrame(s, (f) => f.dir === 'out' && f.a === 'exchangeSdp');
    m['offerSent'] = rel(offer?.t);
    const answer = findFrame(
      s,
      (f) =>
        f.dir === 'in' &&
        f.a === 'eventExchangeSdp' &&
        f.sdpType === 'answer' &&
        f.from === publisher,
    );
    m['signaled'] = rel(answer?.t);
    // The one inbound video stream (the first decoded, should there be more).
    ssrc = Object.entries(s.video)
      .filter(([, v]) => v.firstDecoded !== null)
      .sort(([, a], [, b]) => (a.firstDecoded ?? 0) - (b.firstDecoded ?? 0))[0]?.[0];
  }
  const video = ssrc === undefined ? undefined : s.video[ssrc];
  if (video === undefined || video.firstDecoded === null)
    throw new Error('no decoded frame of the publisher');
  m['connected'] = rel(s.pcs[video.pc]?.connected);
  m['firstPacket'] = rel(video.firstPacket);
  // The script's own <video> of the track; and the page's (sfu.ts: `v-<consumerId>`).
  const probe =
    video.trackId === undefined
      ? undefined
      : s.probes.find((p) => p.presentationTime !== null && p.trackId === video.trackId);
  const shown =
    s.presented.find((p) => consumerId !== null && p.owner.includes(consumerId)) ??
    (s.presented.length === 1 || consumerId === null ? s.presented[0] : undefined);
  m['trackAdded'] = rel(probe?.trackAt);
  m['frameReceived'] = rel(probe?.receiveTime);
  m['decoded'] = rel(video.firstDecoded);
  m['presented'] = rel(probe?.presentationTime);
  m['pageShown'] = rel(shown?.presentationTime);
  if (s.wsOpen === null) throw new Error('the WebSocket never opened');
  const end = Math.max(
    video.firstDecoded,
    probe?.presentationTime ?? 0,
    shown?.presentationTime ?? 0,
  );
  const timeline = s.frames
    .filter((f) => f.t <= end)
    .map((f) => {
      const what = [f.kind, f.direction, f.sdpType, f.s === false ? 'ERROR' : undefined]
        .filter((x) => x !== undefined)
        .join(' ');
      return `+${(f.t - join.t).toFixed(1)} ${f.dir} ${f.a}${what === '' ? '' : ` (${what})`}`;
    });
  return {
    timeline,
    milestones: m,
    wsOpenToDecodedMs: round(video.firstDecoded - s.wsOpen, 2),
    wsOpenToPresentedMs:
      probe === undefined || probe.presentationTime === null
        ? null
        : round(probe.presentationTime - s.wsOpen, 2),
    video,
    consumerId,
    presentedSize:
      probe === undefined ? undefined : `${String(probe.width)}x${String(probe.height)}`,
    others: joinR.sessions?.length ?? 0,
  };
}

interface Bench {
  opts: Options;
  failure: Failure;
  browser: Browser;
  origin: string;
  wsUrl: string;
  /** Init scripts: the subscriber's (polling getStats) and the publisher's (no polling). */
  subscriberScript: string;
  publisherScript: string;
}

async function waitFirstFrame(b: Bench, page: Page, o: FfWaitOptions): Promise<FfState> {
  const r = await b.failure.guard(
    'first frame',
    o.timeoutMs + 5000,
    page.evaluate(async (opts) => await (globalThis as unknown as FfGlobal).__ffWait(opts), o),
  );
  const res: FfWaitResult = r;
  if (!res.ok) throw new Error(`no first frame in time (--timeout-ms): ${res.reason}`);
  return res.state;
}

async function closeSockets(b: Bench, p: BenchPage): Promise<void> {
  await b.failure.guard(
    `${p.label}: close its WebSocket`,
    5000,
    p.page.evaluate(async () => {
      await (globalThis as unknown as FfGlobal).__ffClose();
    }),
  );
}

/** The SFU room and its publisher, set up once. */
interface SfuRoom {
  roomId: string;
  publisher: BenchPage;
  publisherSocketId: string;
}

async function setupSfuRoom(b: Bench): Promise<SfuRoom> {
  const roomId = `ff-sfu-${randomBytes(4).toString('hex')}`;
  const { timeoutMs } = b.opts;
  const publisher = await b.failure.guard(
    'SFU publisher: open the page',
    timeoutMs,
    BenchPage.open(b.browser, `${b.origin}/sfu`, 'sfu publisher', b.publisherScript, 'sfu'),
  );
  try {
    const bearer = await mintToken({ sub: 'publisher', rooms: [roomId] });
    const joined = await b.failure.guard(
      'SFU publisher: join and produce',
      timeoutMs,
      publisher.page.evaluate(
        async (a) => await (globalThis as unknown as SfuGlobal).sfu.start(a),
        { wsUrl: b.wsUrl, roomId, bearer, label: 'publisher' },
      ),
    );
    await b.failure.guard(
      'SFU publisher: its sending transport to connect',
      timeoutMs,
      publisher.page.waitForFunction(
        () => (globalThis as unknown as SfuGlobal).sfu.state().transports['send'] === 'connected',
        undefined,
        { polling: 50 },
      ),
    );
    return { roomId, publisher, publisherSocketId: joined.socketId };
  } catch (err) {
    await publisher.close().catch(() => undefined);
    throw err;
  }
}

interface RunOutcome {
  a: Analysis;
  s: FfState;
  errors: string[];
  /** SFU: the page's own first-frame figure; undefined for P2P. */
  pageFigure: number | null | undefined;
}

async function sfuRun(
  b: Bench,
  room: SfuRoom,
  index: number,
  warmup: boolean,
): Promise<RunOutcome> {
  const { timeoutMs } = b.opts;
  const name = warmup ? `warm-up ${String(index + b.opts.warmup)}` : `run ${String(index)}`;
  const sub = await b.failure.guard(
    `SFU ${name}: open the page`,
    timeoutMs,
    BenchPage.open(b.browser, `${b.origin}/sfu`, `sfu ${name}`, b.subscriberScript, 'sfu'),
  );
  try {
    const bearer = await mintToken({ sub: `subscriber-${name}`, rooms: [room.roomId] });
    const deadline = Date.now() + timeoutMs;
    await b.failure.guard(
      `SFU ${name}: join and set up media`,
      timeoutMs,
      sub.page.evaluate(async (a) => await (globalThis as unknown as SfuGlobal).sfu.start(a), {
        wsUrl: b.wsUrl,
        roomId: room.roomId,
        bearer,
        label: `subscriber ${name}`,
      }),
    );
    const s = await waitFirstFrame(b, sub.page, {
      from: room.publisherSocketId,
      timeoutMs: Math.max(0, deadline - Date.now()),
      presentedGraceMs: 1000,
    });
    const a = analyse('sfu', s, room.publisherSocketId);
    const view = await sub.page.evaluate(() => (globalThis as unknown as SfuGlobal).sfu.state());
    const mine = view.consumers.find((c) => c.consumerId === a.consumerId);
    const pageFigure =
      mine === undefined || mine.firstFrameAt === null || view.connectAt === 0
        ? null
        : mine.firstFrameAt - view.connectAt;
    await b.failure.guard(
      `SFU ${name}: leave`,
      5000,
      sub.page.evaluate(async () => {
        await (globalThis as unknown as SfuGlobal).sfu.leave();
      }),
    );
    const errors = [
      ...sub.errors,
      ...view.errors.map((e) => `${sub.label}: ${e}`),
      ...s.errors.map((e) => `${sub.label}: instrumentation: ${e}`),
    ];
    return { a, s, errors, pageFigure };
  } finally {
    await sub.close();
  }
}

async function p2pRun(b: Bench, index: number, warmup: boolean): Promise<RunOutcome> {
  const { timeoutMs } = b.opts;
  const name = warmup ? `warm-up ${String(index + b.opts.warmup)}` : `run ${String(index)}`;
  const roomId = `ff-p2p-${randomBytes(4).toString('hex')}`;
  const url = `${b.origin}/p2p`;
  const pages: BenchPage[] = [];
  try {
    const pub = await b.failure.guard(
      `P2P ${name}: open the publisher's page`,
      timeoutMs,
      BenchPage.open(b.browser, url, `p2p publisher ${name}`, b.publisherScript, 'startP2P'),
    );
    pages.push(pub);
    const sub = await b.failure.guard(
      `P2P ${name}: open the subscriber's page`,
      timeoutMs,
      BenchPage.open(b.browser, url, `p2p subscriber ${name}`, b.subscriberScript, 'startP2P'),
    );
    pages.push(sub);
    const start = async (p: BenchPage, user: string): Promise<JoinReply> => {
      const bearer = await mintToken({ sub: user, rooms: [roomId] });
      return await b.failure.guard(
        `P2P ${name}: ${p.label} joins`,
        timeoutMs,
        p.page.evaluate(async (args) => await (globalThis as unknown as P2PGlobal).startP2P(args), {
          wsUrl: b.wsUrl,
          bearer,
          roomId,
        }),
      );
    };
    const publisher = await start(pub, 'publisher');
    const deadline = Date.now() + timeoutMs;
    await start(sub, 'subscriber');
    const s = await waitFirstFrame(b, sub.page, {
      from: null,
      timeoutMs: Math.max(0, deadline - Date.now()),
      presentedGraceMs: 1000,
    });
    const a = analyse('p2p', s, publisher.socketId);
    const pageErrors: string[] = [];
    for (const p of [sub, pub]) {
      const st = await p.page.evaluate(() => (globalThis as unknown as P2PGlobal).p2pState);
      for (const e of st?.errors ?? []) pageErrors.push(`${p.label}: ${e}`);
    }
    for (const p of [sub, pub]) await closeSockets(b, p);
    const errors = [
      ...pages.flatMap((p) => p.errors),
      ...pageErrors,
      ...s.errors.map((e) => `${sub.label}: instrumentation: ${e}`),
    ];
    return { a, s, errors, pageFigure: undefined };
  } finally {
    for (const p of pages.reverse()) await p.close();
  }
}

async function measure(
  b: Bench,
  path: PathName,
  index: number,
  warmup: boolean,
  sfuRoom: SfuRoom | undefined,
): Promise<RunRecord> {
  const base = { path, index, warmup };
  try {
    let r: RunOutcome;
    if (path === 'sfu') {
      if (sfuRoom === undefined) throw new Error('no SFU room');
      r = await sfuRun(b, sfuRoom, index, warmup);
    } else {
      r = await p2pRun(b, index, warmup);
    }
    const { a, s, errors } = r;
    const rec: RunRecord = {
      ...base,
      ok: true,
      joinToPresentedMs: a.milestones['presented'] ?? null,
      joinToDecodedMs: a.milestones['decoded'] ?? NaN,
      wsOpenToPresentedMs: a.wsOpenToPresentedMs,
      wsOpenToDecodedMs: a.wsOpenToDecodedMs,
      milestones: a.milestones,
      video: {
        ...(a.video.width === undefined ? {} : { width: a.video.width }),
        ...(a.video.height === undefined ? {} : { height: a.video.height }),
        ...(a.video.decoder === undefined ? {} : { decoder: a.video.decoder }),
        ...(a.presentedSize === undefined ? {} : { presented: a.presentedSize }),
      },
      ...(r.pageFigure === undefined ? {} : { pageFirstFrameFromWsOpenMs: r.pageFigure }),
      others: a.others,
      polls: { count: s.polls, meanMs: round(s.pollMeanMs, 2) },
      timeline: a.timeline,
      raw: rawRelative(s),
      errors,
    };
    if (rec.joinToPresentedMs === null) {
      rec.errors.push('no requestVideoFrameCallback of the first frame');
    }
    if (a.others !== 1) {
      rec.errors.push(`${String(a.others)} members were in the room at the join (expected 1)`);
    }
    return rec;
  } catch (err) {
    if (b.failure.error !== undefined) throw b.failure.error;
    return { ...base, ok: false, error: errMessage(err), errors: [] };
  }
}

// ---------------------------------------------------------------------------------- report

function fmtMs(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function fmtStats(s: Stats | undefined, which: 'p50p90' | 'minmax'): string {
  if (s === undefined) return '—';
  return which === 'p50p90'
    ? `${fmtMs(s.p50)} / ${fmtMs(s.p90)}`
    : `${fmtMs(s.min)} / ${fmtMs(s.max)}`;
}

interface PathSummary {
  runs: number;
  failed: number;
  joinToPresented: Stats | undefined;
  joinToDecoded: Stats | undefined;
  wsOpenToPresented: Stats | undefined;
  wsOpenToDecoded: Stats | undefined;
  /** Per milestone: ms after join. */
  milestones: Record<string, Stats | undefined>;
  /** First decoded frame sizes, with how many runs had each. */
  sizes: Record<string, number>;
  /** SFU: the page's own first-frame figure (from its connect). */
  pageFirstFrameFromWsOpen?: Stats | undefined;
}

function summarise(path: PathName, records: RunRecord[]): PathSummary {
  const measured = records.filter((r) => r.path === path && !r.warmup);
  const ok = measured.filter((r) => r.ok);
  const nums = (f: (r: RunRecord) => number | null | undefined): number[] =>
    ok.map(f).filter((x): x is number => typeof x === 'number' && !Number.isNaN(x));
  const sizes: Record<string, number> = {};
  for (const r of ok) {
    const k = `${String(r.video?.width ?? '?')}x${String(r.video?.height ?? '?')}`;
    sizes[k] = (sizes[k] ?? 0) + 1;
  }
  return {
    runs: measured.length,
    failed: measured.length - ok.length,
    joinToPresented: stats(nums((r) => r.joinToPresentedMs)),
    joinToDecoded: stats(nums((r) => r.joinToDecodedMs)),
    wsOpenToPresented: stats(nums((r) => r.wsOpenToPresentedMs)),
    wsOpenToDecoded: stats(nums((r) => r.wsOpenToDecodedMs)),
    milestones: Object.fromEntries(
      MILESTONES.filter((m) => m.paths.includes(path)).map((m) => [
        m.key,
        stats(nums((r) => r.milestones?.[m.key])),
      ]),
    ),
    sizes,
    ...(path === 'sfu'
      ? { pageFirstFrameFromWsOpen: stats(nums((r) => r.pageFirstFrameFromWsOpenMs)) }
      : {}),
  };
}

interface Ratios {
  presented: number | undefined;
  decoded: number | undefined;
}

function ratios(summaries: Partial<Record<PathName, PathSummary>>): Ratios {
  const r = (f: (s: PathSummary) => Stats | undefined): number | undefined => {
    const a = summaries.sfu === undefined ? undefined : f(summaries.sfu)?.p50;
    const b = summaries.p2p === undefined ? undefined : f(summaries.p2p)?.p50;
    return a === undefined || b === undefined || b <= 0 ? undefined : a / b;
  };
  return { presented: r((s) => s.joinToPresented), decoded: r((s) => s.joinToDecoded) };
}

function report(
  opts: Options,
  browserVersion: string,
  summaries: Partial<Record<PathName, PathSummary>>,
  load: MachineLoad,
): string {
  const sfu = summaries.sfu;
  const p2p = summaries.p2p;
  const col = (s: PathSummary | undefined, f: (s: PathSummary) => string): string =>
    s === undefined ? 'skipped' : f(s);
  const both = (label: string, f: (s: PathSummary) => string): [string, string, string] => [
    label,
    col(sfu, f),
    col(p2p, f),
  ];
  const rows: [string, string, string][] = [
    ['', 'SFU (gateway + media node)', 'P2P (direct, same gateway)'],
    both('runs measured (failed)', (s) => `${String(s.runs)} (${String(s.failed)})`),
    both('join → first frame presented, p50 / p90', (s) => fmtStats(s.joinToPresented, 'p50p90')),
    both('                              min / max', (s) => fmtStats(s.joinToPresented, 'minmax')),
    both('join → first frame decoded,   p50 / p90', (s) => fmtStats(s.joinToDecoded, 'p50p90')),
    both('                              min / max', (s) => fmtStats(s.joinToDecoded, 'minmax')),
    both('WebSocket open → presented,   p50 / p90', (s) => fmtStats(s.wsOpenToPresented, 'p50p90')),
    both('first decoded frame (runs)', (s) =>
      Object.entries(s.sizes)
        .map(([k, n]) => `${k} (${String(n)})`)
        .join(', '),
    ),
    ['milestones, ms after  p50 / p90:', '', ''],
    ...MILESTONES.map(({ key, label, paths }): [string, string, string] => {
      const one = (path: PathName, s: PathSummary | undefined): string =>
        s === undefined
          ? 'skipped'
          : paths.includes(path)
            ? fmtStats(s.milestones[key], 'p50p90')
            : '—';
      return [`  ${label}`, one('sfu', sfu), one('p2p', p2p)];
    }),
  ];
  const r = ratios(summaries);
  const diff = (f: (s: PathSummary) => Stats | undefined): string => {
    const d =
      (sfu === undefined ? NaN : (f(sfu)?.p50 ?? NaN)) -
      (p2p === undefined ? NaN : (f(p2p)?.p50 ?? NaN));
    return Number.isNaN(d) ? '—' : `${d >= 0 ? '+' : '−'}${fmtMs(Math.abs(d))}`;
  };
  const pageCheck = sfu?.pageFirstFrameFromWsOpen;
  return [
    "first frame: from a browser's join to the first frame of another member's camera",
    `Chromium ${browserVersion} headless, fake camera and microphone, a browser context per page; ` +
      `${String(opts.runs)} measured runs of each path after ${String(opts.warmup)} warm-up, alternating`,
    'SFU: rooms + gateway + media node (1 mediasoup worker); sfu.ts (the SDK): one publisher ' +
      '(simulcast camera + mic), a fresh subscriber page per run that joins, consumes and leaves',
    "P2P: p2p.ts (the SDK's Session), a fresh pair per run in a fresh room: the subscriber calls the publisher, " +
      'exchangeSdp / exchangeCandidate relayed by the same gateway, RTCPeerConnection on loopback',
    `${machineLine()}; ` +
      `CPU busy ${pct(load.before)} of all cores in the second before the start` +
      (load.before > BUSY_BEFORE
        ? ' — BUSY: other work on the machine weighs on these figures'
        : '') +
      `, ${pct(load.during)} during the runs (with this benchmark's own)`,
    '',
    'ms; p50 / p90 nearest rank',
    ...columns(rows),
    '',
    `ratio SFU / P2P of the p50s: presented ${r.presented === undefined ? '—' : r.presented.toFixed(2)} ` +
      `(${diff((s) => s.joinToPresented)} ms), decoded ${r.decoded === undefined ? '—' : r.decoded.toFixed(2)} ` +
      `(${diff((s) => s.joinToDecoded)} ms)`,
    '"presented", "rVFC": requestVideoFrameCallback on a <video> of the benchmark playing the remote ' +
      'track from when it is added (exact);',
    `"polled": getStats every ${String(opts.pollMs)} ms in the subscriber page (late by up to that, ` +
      "alike on both paths); the page's own <video>: when the page got round to showing the track.",
    ...(pageCheck === undefined
      ? []
      : [
          `cross-check: sfu.ts's own firstFrameAt (polled every 50 ms) from its connect, p50 ` +
            `${fmtMs(pageCheck.p50)} ms (here, decoded: ${fmtMs(sfu?.wsOpenToDecoded?.p50)} ms).`,
        ]),
  ].join('\n');
}

// ------------------------------------------------------------------------------------ main

async function main(run: BenchRun): Promise<number> {
  const { failure, cleanup, anomalies } = run;
  const opts = parseOptions();
  const startedAt = new Date();
  const cpuAtStart = cpuTimes();
  await sleep(1000);
  const cpuBefore = cpuTimes();
  const busyBefore = busyShare(cpuAtStart, cpuBefore);
  if (busyBefore > BUSY_BEFORE)
    log(`the machine is busy: ${pct(busyBefore)} of its CPU in use before the start`);
  log('pages: bundling sfu.ts with the SDK');
  const pages = await servePages();
  cleanup.add('stop the page server', async () => {
    await pages.close();
  });
  failure.check();
  // The pages have an origin of their own: the gateway admits it (and only it) by name.
  const platform = await startOwnPlatform(run, pages.origin);
  failure.check();

  log(`browser: launching ${CHROMIUM_PATH}`);
  let closingBrowser = false;
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      ...CHROMIUM_ARGS,
      // Host candidates as plain loopback addresses (P2P), not mDNS names nobody resolves.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // Timers and rendering at full rate in every page, whichever has the focus.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
    // This process handles signals; it closes the browser in its clean-up.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  cleanup.add('close the browser', async () => {
    closingBrowser = true;
    await browser.close();
  });
  browser.on('disconnected', () => {
    if (!closingBrowser) failure.fail(new Error('Chromium exited'));
  });
  const browserVersion = browser.version();
  failure.check();

  const b: Bench = {
    opts,
    failure,
    browser,
    origin: pages.origin,
    wsUrl: platform.wsUrl,
    subscriberScript: instrumentScript({ pollMs: opts.pollMs }),
    publisherScript: instrumentScript({ pollMs: 0 }),
  };

  let sfuRoom: SfuRoom | undefined;
  if (opts.paths.includes('sfu')) {
    log('SFU: the publisher joins and produces');
    sfuRoom = await setupSfuRoom(b);
    const room = sfuRoom;
    cleanup.add('close the SFU publisher', async () => {
      await room.publisher.close();
    });
  }

  const cpuRunsStart = cpuTimes();
  const records: RunRecord[] = [];
  const consecutiveFailures: Record<PathName, number> = { sfu: 0, p2p: 0 };
  const total = opts.warmup + opts.runs;
  for (let i = 0; i < total; i++) {
    const warmup = i < opts.warmup;
    const index = i - opts.warmup + 1;
    // Alternate which path goes first.
    const order = i % 2 === 0 ? opts.paths : [...opts.paths].reverse();
    for (const path of order) {
      failure.check();
      await sleep(opts.pauseMs);
      const r = await measure(b, path, index, warmup, sfuRoom);
      records.push(r);
      const what = `${path.toUpperCase()} ${warmup ? 'warm-up' : `run ${String(index)}`}`;
      if (!r.ok) {
        log(`${what}: FAILED: ${r.error ?? '?'}`);
        anomalies.push(`${what}: ${r.error ?? 'failed'}`);
        if (++consecutiveFailures[path] >= 3)
          throw new Error(`${path}: 3 runs in a row failed; giving up`);
        continue;
      }
      consecutiveFailures[path] = 0;
      for (const e of r.errors) anomalies.push(`${what}: ${e}`);
      const m = r.milestones ?? {};
      log(
        `${what}: join → presented ${fmtMs(r.joinToPresentedMs)} ms, decoded ${fmtMs(r.joinToDecodedMs)} ms ` +
          `(joinR ${fmtMs(m['joinR'])}, ${path === 'sfu' ? 'consumer' : 'answer'} ${fmtMs(m['signaled'])}, ` +
          `connected ${fmtMs(m['connected'])}, first packet ${fmtMs(m['firstPacket'])}; ` +
          `${String(r.video?.width ?? '?')}x${String(r.video?.height ?? '?')})` +
          (r.errors.length > 0 ? `; ${String(r.errors.length)} page error(s)` : ''),
      );
    }
  }
  if (sfuRoom !== undefined) {
    const view = await sfuRoom.publisher.page.evaluate(() =>
      (globalThis as unknown as SfuGlobal).sfu.state(),
    );
    for (const e of [...sfuRoom.publisher.errors, ...view.errors])
      anomalies.push(`SFU publisher: ${e}`);
  }

  const summaries: Partial<Record<PathName, PathSummary>> = {};
  for (const path of opts.paths) summaries[path] = summarise(path, records);
  const r = ratios(summaries);
  const load: MachineLoad = {
    before: busyBefore,
    during: busyShare(cpuRunsStart, cpuTimes()),
    loadAverage1m: os.loadavg()[0] ?? NaN,
  };
  const text = report(opts, browserVersion, summaries, load);
  process.stdout.write(`\n${text}\n`);
  if (anomalies.length > 0) {
    process.stdout.write(`\nFAILED (${String(anomalies.length)}):\n`);
    for (const a of anomalies.slice(0, 30)) process.stdout.write(`  ${a}\n`);
  }

  writeResults('first-frame', startedAt, {
    machine: {
      chromium: browserVersion,
      busy: {
        before: round(load.before, 3),
        during: round(load.during, 3),
        loadAverage1mAtEnd: round(load.loadAverage1m, 2),
      },
    },
    options: opts,
    setup: platform.setup,
    summary: {
      ...summaries,
      ratioSfuOverP2pP50: {
        presented: r.presented === undefined ? null : round(r.presented, 3),
        decoded: r.decoded === undefined ? null : round(r.decoded, 3),
      },
    },
    runs: records,
    failedChecks: anomalies,
    text,
  });
  return anomalies.length > 0 ? 1 : 0;
}

await runBench(cli.usage, main);
