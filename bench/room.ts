/**
 * `./run bench room [-- flags]`: one big room. N clients join ONE room through one or two
 * gateways (half on each), C joins in flight, beside the bare join transaction of the same N
 * rows into one room at the same concurrency (`bench/lib/join-tx.ts`) measured in the same run.
 *
 * 1. **join** — every client connects, then joins (C at once): joins/s, join → joinR p50/p99
 *    overall, of the first and the last 1000 joins and by tenth of the room;
 * 2. **presence** — each client counts the members it knows: its joinR's `roomSize`, plus the
 *    eventJoins after it, minus the eventLeaves. Timed from the last joinR until every client
 *    knows all N; the frames and bytes every client received meanwhile (WebSocket messages as
 *    they came: batched events show as fewer frames);
 * 3. **listing** — the last member to join reads the whole member list: its joinR's first page,
 *    then `listMembers` pages from `sessionsNext`; it must list the other N-1 members, each once;
 * 4. **leave** — all clients but one per gateway (the observers) close with 1000 at once: timed
 *    until every observer has heard all their eventLeaves, and until the rooms service's
 *    database holds only the observers (polled every 50 ms: a leave is done there before it is
 *    broadcast); then the observers close, timed until the room's row is gone;
 * 5. throughout, the VmRSS of each gateway and of the rooms service (every 50 ms, and at the
 *    end of each phase) and the CPU each process used per join and per leave.
 *
 * The clients run in this one process, so each frame must be cheap: an eventJoin or eventLeave
 * is recognised by the first bytes of the frame (`{"a":"eventJoin","d":{`, the order in which
 * the rooms service writes its fields) and only eventJoin's `roomSize` is read from its bytes;
 * such frames are never parsed as JSON. Anything else (replies, other events, eventBatch) is
 * parsed. An eventJoin whose roomSize the client's joinR (or a later eventRoomState) already
 * counted is not counted again (a broadcast may reach a new member's gateway after its joinR).
 *
 * `--batch 1` (the default) asks for batched events (`batchEvents: true` in join: the opt-in
 * protocol extension whose `eventBatch` frames carry several events); every client unpacks
 * eventBatch frames either way (bench/lib/ws-client.ts).
 *
 * Prints a table and writes it, with every figure, to <ARTIFACTS_DIR>/bench/room-<time>.json.
 * Exit 0 on success; 1 on any failure or failed check (the results are still written when only
 * a check failed); 130 on SIGINT.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEV_HS256_SECRET, mintToken } from '@switchboard/devstack';
import {
  JoinReply,
  ListMembersReply,
  MEMBERS_PAGE_MAX,
  formatIssues,
  validator,
} from '@switchboard/protocol';
import pg from 'pg';
import {
  UsageError,
  columns,
  cpuText,
  ends,
  commandLine,
  finishRun,
  fmt,
  log,
  machineLine,
  perUnit,
  pool,
  runBench,
  stats,
  type BenchRun,
  type Failure,
  type Stats,
} from './lib/cli.ts';
import type { CpuMeter } from './lib/proc-cpu.ts';
import type { RssResult } from './lib/proc-mem.ts';
import { runJoinTx, startSignalingPlatform } from './lib/signaling-platform.ts';
import {
  clientLoad,
  closeAll,
  connectAll,
  describeReply,
  otherEvents,
  received,
  type Conn,
  type Frame,
  type OnRaw,
} from './lib/ws-client.ts';

// ------------------------------------------------------------------------------- options

const cli = commandLine('room', {
  members: { env: 'BENCH_MEMBERS', def: 10_000, min: 2, help: 'clients joining the one room' },
  gateways: { env: 'BENCH_GATEWAYS', def: 2, min: 1, help: 'gateways, 1 or 2' },
  concurrency: {
    env: 'BENCH_CONCURRENCY',
    def: 50,
    min: 1,
    help: 'connects and joins in flight at once',
  },
  batch: {
    env: 'BENCH_BATCH',
    def: 1,
    min: 0,
    help: '1: ask for batched events (batchEvents: true in join); 0: do not',
  },
  'timeout-ms': {
    env: 'BENCH_TIMEOUT_MS',
    def: 600_000,
    min: 1000,
    help: 'limit of each phase (and of each join)',
  },
});

interface Options {
  members: number;
  gateways: number;
  concurrency: number;
  batch: boolean;
  timeoutMs: number;
}

function parseOptions(): Options {
  const flags = cli.parse();
  const opts: Options = {
    members: flags.num('members'),
    gateways: flags.num('gateways'),
    concurrency: flags.num('concurrency'),
    batch: flags.num('batch') === 1,
    timeoutMs: flags.num('timeout-ms'),
  };
  if (opts.gateways > 2) throw new UsageError('--gateways must be 1 or 2');
  if (flags.num('batch') > 1) throw new UsageError('--batch must be 0 or 1');
  // ROOM_DEFAULT_CAPACITY's maximum: the room must admit them all.
  if (opts.members > 100_000) throw new UsageError('--members must be at most 100000');
  // WS_JOIN_TIMEOUT_MS's maximum: clients wait this long between their connect and their join.
  if (opts.timeoutMs > 3_600_000) throw new UsageError('--timeout-ms must be at most 3600000');
  if (opts.members <= opts.gateways)
    throw new UsageError('--members must be more than --gateways (one observer per gateway)');
  return opts;
}

// ------------------------------------------------------------------------------ presence

/**
 * How many members each client knows, and waits until chosen clients all know a number.
 * Typed arrays by client index: 10,000 clients hear some 50 million events in a room of
 * 10,000, one call each.
 */
class Presence {
  /** The roomSize of the client's joinR (or latest eventRoomState); 0 before its joinR. */
  readonly base: Int32Array;
  readonly known: Int32Array;
  /** eventLeaves each client heard. */
  readonly leavesOf: Int32Array;
  /** joinRs; eventJoins counted, eventJoins its joinR had counted already, eventLeaves, room states. */
  joinRs = 0;
  joins = 0;
  staleJoins = 0;
  leaves = 0;
  roomStates = 0;
  /** Events before the client's joinR (the gateway holds them until joinR is written). */
  early = 0;
  /** Times a client knew more members than the room can have. */
  overshoots = 0;
  readonly #max: number;
  #watched = new Uint8Array(0);
  #reachedOf = new Uint8Array(0);
  #waiting = 0;
  #target = 0;
  #reachedAt = 0;
  #resolve: ((at: number) => void) | undefined;

  constructor(clients: number) {
    this.base = new Int32Array(clients);
    this.known = new Int32Array(clients);
    this.leavesOf = new Int32Array(clients);
    this.#max = clients;
  }

  /**
   * Resolves (with the time of the event that did it) once every client of `indexes` knows
   * exactly `target` members.
   */
  async watch(indexes: readonly number[], target: number): Promise<number> {
    this.#watched = new Uint8Array(this.known.length);
    this.#reachedOf = new Uint8Array(this.known.length);
    this.#target = target;
    this.#waiting = indexes.length;
    const done = new Promise<number>((resolve) => {
      this.#resolve = resolve;
    });
    for (const i of indexes) {
      this.#watched[i] = 1;
      this.#check(i, performance.now());
    }
    return await done;
  }

  /** How many of the watched clients have not reached the target yet. */
  get waiting(): number {
    return this.#waiting;
  }

  joined(i: number, roomSize: number, at: number): void {
    this.joinRs++;
    this.#reset(i, roomSize, at);
  }

  #reset(i: number, roomSize: number, at: number): void {
    this.base[i] = roomSize;
    this.known[i] = roomSize;
    this.#check(i, at);
  }

  heardJoin(i: number, roomSize: number, at: number): void {
    const base = this.base[i] ?? 0;
    if (base === 0) {
      this.early++;
    } else if (roomSize <= base) {
      this.staleJoins++;
    } else {
      this.joins++;
      this.known[i] = (this.known[i] ?? 0) + 1;
      this.#check(i, at);
    }
  }

  heardLeave(i: number, at: number): void {
    if ((this.base[i] ?? 0) === 0) this.early++;
    this.leaves++;
    this.leavesOf[i] = (this.leavesOf[i] ?? 0) + 1;
    this.known[i] = (this.known[i] ?? 0) - 1;
    this.#check(i, at);
  }

  /** eventRoomState replaces what the client knew (its members, as the room is now). */
  roomState(i: number, roomSize: number, at: number): void {
    this.roomStates++;
    this.#reset(i, roomSize, at);
  }

  #check(i: number, at: number): void {
    const known = this.known[i] ?? 0;
    if (known > this.#max) this.overshoots++;
    if (this.#watched[i] !== 1 || this.#reachedOf[i] === 1 || known !== this.#target) return;
    this.#reachedOf[i] = 1;
    this.#reachedAt = Math.max(this.#reachedAt, at);
    if (--this.#waiting === 0) this.#resolve?.(this.#reachedAt);
  }
}

// The frames a client gets most, recognised by their first bytes (see the header).
const JOIN_HEAD = Buffer.from('{"a":"eventJoin","d":{');
const LEAVE_HEAD = Buffer.from('{"a":"eventLeave","d":{');
const ROOM_SIZE = Buffer.from('"roomSize":');

function startsWith(buf: Buffer, head: Buffer): boolean {
  return buf.length > head.length && buf.compare(head, 0, head.length, 0, head.length) === 0;
}

/** The non-negative integer written at `buf[from]`, or undefined. */
function integerAt(buf: Buffer, from: number): number | undefined {
  let n = 0;
  let k = from;
  for (; k < buf.length; k++) {
    const c = buf[k] ?? 0;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  return k === from ? undefined : n;
}

/** A room event's `roomSize`, if it is a non-negative integer. */
function roomSizeOf(d: unknown): number | undefined {
  const n = (d as { roomSize?: unknown } | undefined)?.roomSize;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** Feed every client's presence events to `presence` (raw eventJoin/eventLeave, parsed rest). */
function listen(conns: readonly Conn[], presence: Presence, failure: Failure): { raw: number } {
  const counts = { raw: 0 };
  const onRaw: OnRaw = (conn, buf, at) => {
    if (startsWith(buf, JOIN_HEAD)) {
      const k = buf.indexOf(ROOM_SIZE, JOIN_HEAD.length);
      const size = k < 0 ? undefined : integerAt(buf, k + ROOM_SIZE.length);
      if (size === undefined) return false; // parsed, and reported there
      counts.raw++;
      presence.heardJoin(conn.index, size, at);
      return true;
    }
    if (startsWith(buf, LEAVE_HEAD)) {
      counts.raw++;
      presence.heardLeave(conn.index, at);
      return true;
    }
    return false;
  };
  for (const c of conns) {
    c.onRaw = onRaw;
    c.onEvent = (conn, frame, at) => {
      const size = roomSizeOf(frame.d);
      switch (frame.a) {
        case 'eventLeave':
          presence.heardLeave(conn.index, at);
          return;
        case 'eventJoin':
        case 'eventRoomState':
          // Both carry the room's size.
          if (size === undefined) {
            failure.fail(new Error(`client ${conn.index}: ${JSON.stringify(frame)}`));
          } else if (frame.a === 'eventJoin') {
            presence.heardJoin(conn.index, size, at);
          } else {
            presence.roomState(conn.index, size, at);
          }
          return;
        default:
          conn.countEvent(frame);
      }
    };
  }
  return counts;
}

// ---------------------------------------------------------------------------------- phases

const joinReply = validator(JoinReply);
const listReply = validator(ListMembersReply);

interface Joined {
  /** Join → joinR of each client, ms, by client index (the order the joins were sent). */
  ms: Float64Array;
  /** When the last joinR arrived. */
  lastAt: number;
  /** The last joiner's joinR: its first page of members, where the rest starts, its size. */
  last: { conn: Conn; sessions: string[]; next: string | undefined; bytes: number } | undefined;
}

async function joinAll(
  conns: readonly Conn[],
  tokens: readonly string[],
  roomId: string,
  opts: Options,
  presence: Presence,
  failure: Failure,
  anomalies: string[],
): Promise<Joined> {
  const n = conns.length;
  const res: Joined = { ms: new Float64Array(n), lastAt: 0, last: undefined };
  const sizeSeen = new Uint8Array(n + 1);
  const onJoinR = (c: Conn, frame: Frame, ms: number, at: number, bytes: number): void => {
    if (frame.a !== 'joinR' || frame.s !== true) {
      const hint =
        opts.batch && frame.s === false
          ? ' (does this gateway take batchEvents? --batch 0 does not send it)'
          : '';
      throw new Error(`client ${c.index}: join: ${describeReply(frame)}${hint}`);
    }
    const parsed = joinReply.parse(frame.d);
    if (!parsed.ok)
      throw new Error(
        `client ${c.index}: joinR is not a JoinReply: ${formatIssues(parsed.issues)}`,
      );
    const { socketId, roomSize, sessions, sessionsNext } = parsed.value;
    c.socketId = socketId;
    res.ms[c.index] = ms;
    res.lastAt = Math.max(res.lastAt, at);
    presence.joined(c.index, roomSize, at);
    if (roomSize > n || sizeSeen[roomSize] === 1)
      anomalies.push(`client ${c.index}: joinR roomSize ${roomSize} (twice, or over ${n})`);
    sizeSeen[roomSize] = 1;
    const page = Math.min(roomSize - 1, MEMBERS_PAGE_MAX);
    if (
      sessions.length !== page ||
      (sessionsNext !== undefined) !== roomSize - 1 > MEMBERS_PAGE_MAX ||
      sessions.some((s) => s.socketId === socketId)
    )
      anomalies.push(
        `client ${c.index}: joinR roomSize ${roomSize} with ${sessions.length} sessions, ` +
          `sessionsNext ${String(sessionsNext)}`,
      );
    if (roomSize === n)
      res.last = { conn: c, sessions: sessions.map((s) => s.socketId), next: sessionsNext, bytes };
  };
  await pool(conns, opts.concurrency, async (c) => {
    c.roomId = roomId;
    c.userId = `bench-user-${c.index}`;
    const data = {
      roomId,
      bearer: tokens[c.index],
      platform: 'Web',
      ...(opts.batch ? { batchEvents: true } : {}),
    };
    // The reply is taken in the socket's message handler, before the events that follow it
    // in the same read (an awaited promise would see them first).
    const replied = new Promise<void>((resolve, reject) => {
      const t = c.send(failure, 'join', data, (frame, at, bytes) => {
        try {
          onJoinR(c, frame, at - t, at, bytes);
          resolve();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    await failure.guard(`join of client ${c.index}`, opts.timeoutMs, replied);
  });
  return res;
}

/** The last joiner lists every member: its joinR's page, then listMembers pages. */
async function listAll(
  joined: Joined,
  conns: readonly Conn[],
  opts: Options,
  failure: Failure,
  anomalies: string[],
) {
  const last = joined.last;
  if (last === undefined) throw new Error(`no joinR had roomSize ${conns.length}`);
  const lister = last.conn;
  const seen = new Set(last.sessions);
  const pageMs: number[] = [];
  let largest = last.bytes;
  let largestList = 0;
  let pages = 0;
  let duplicates = last.sessions.length - seen.size;
  let next = last.next;
  const t0 = performance.now();
  while (next !== undefined) {
    const after: string = next;
    const { frame, ms, bytes } = await failure.guard(
      'listMembers',
      opts.timeoutMs,
      lister.request(failure, 'listMembers', { after, limit: MEMBERS_PAGE_MAX }),
    );
    if (frame.a !== 'listMembersR' || frame.s !== true)
      throw new Error(`listMembers after ${after}: ${describeReply(frame)}`);
    const parsed = listReply.parse(frame.d);
    if (!parsed.ok)
      throw new Error(`listMembersR is not a ListMembersReply: ${formatIssues(parsed.issues)}`);
    pages++;
    pageMs.push(ms);
    largest = Math.max(largest, bytes);
    largestList = Math.max(largestList, bytes);
    for (const s of parsed.value.sessions) {
      if (seen.has(s.socketId)) duplicates++;
      seen.add(s.socketId);
    }
    next = parsed.value.next;
  }
  const ms = performance.now() - t0;
  const others = new Set(conns.filter((c) => c !== lister).map((c) => c.socketId));
  let missing = 0;
  for (const id of others) if (!seen.has(id)) missing++;
  // Listed but not another member (the lister itself, or nobody the benchmark knows).
  const strangers = seen.size - (others.size - missing);
  if (missing > 0 || duplicates > 0 || strangers > 0)
    anomalies.push(
      `listing: ${seen.size} distinct members listed of ${others.size} others; ` +
        `${missing} missing, ${duplicates} listed twice, ${strangers} not among the others`,
    );
  return {
    /** The lister and the others it listed (all N members, each once, when nothing failed). */
    members: seen.size - strangers + 1,
    fromJoinR: last.sessions.length,
    /** listMembers requests, one after another. */
    pages,
    ms: Math.round(ms * 10) / 10,
    pageMs: stats(pageMs),
    /** The largest reply frame (joinR included), and the largest listMembersR, bytes. */
    largestFrameBytes: largest,
    largestPageBytes: largestList,
    joinRBytes: last.bytes,
    duplicates,
    missing,
  };
}

/** Poll `count()` every 50 ms until it returns `want`; the time it took, ms. */
async function pollUntil(
  what: string,
  count: () => Promise<number>,
  want: number,
  signal: AbortSignal,
): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (signal.aborted) throw new Error(`${what}: stopped waiting`);
    if ((await count()) === want) return performance.now() - t0;
    await sleep(50);
  }
}

async function leaveAll(
  conns: readonly Conn[],
  gateways: number,
  roomId: string,
  db: pg.Client,
  cpu: CpuMeter,
  presence: Presence,
  opts: Options,
  failure: Failure,
) {
  // Client g connected to gateway g: one observer on each.
  const observers = conns.slice(0, gateways);
  const leavers = conns.slice(gateways);
  const k = observers.length;
  const sessions = async (): Promise<number> =>
    (
      await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sessions WHERE room_id = $1', [
        roomId,
      ])
    ).rows[0]?.n ?? -1;
  const rooms = async (): Promise<number> =>
    (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM rooms WHERE id = $1', [roomId]))
      .rows[0]?.n ?? -1;

  const before = received(observers);
  const statesBefore = presence.roomStates;
  const leavesBefore = observers.map((c) => presence.leavesOf[c.index] ?? 0);
  const heard = presence.watch(
    observers.map((c) => c.index),
    k,
  );
  const stop = new AbortController();
  const usage = cpu.start();
  const t0 = performance.now();
  for (const c of leavers) c.leave();
  try {
    const [heardAt, dbMs, closedMs] = await failure.guard(
      `${leavers.length} leaves`,
      opts.timeoutMs,
      Promise.all([
        heard,
        pollUntil('the leaves in the database', sessions, k, stop.signal),
        Promise.all(leavers.map(async (c) => await c.closed)).then(() => performance.now() - t0),
      ]),
      () =>
        `${presence.waiting} of ${k} observers still waiting; ` +
        `${presence.leaves} eventLeave heard so far`,
    );
    const cpuMs = usage();
    const after = received(observers);
    const heardMs = heardAt - t0;

    const t1 = performance.now();
    const closeMs = await closeAll(observers, opts.timeoutMs, failure);
    await failure.guard(
      'the room closing',
      opts.timeoutMs,
      pollUntil('the room closing', rooms, 0, stop.signal),
    );
    return {
      leavers: leavers.length,
      observers: k,
      /** Leavers close → every observer has heard all their eventLeaves, ms. */
      heardMs: Math.round(heardMs),
      /** Leavers close → the rooms service's database holds only the observers, ms. */
      databaseMs: Math.round(dbMs),
      /** Leavers close → their sockets closed (the gateway's close handshake), ms. */
      closedMs: Math.round(closedMs),
      /** Frames and bytes each observer received meanwhile, the eventLeaves among them. */
      observerFrames: (after.frames - before.frames) / k,
      observerBytes: (after.bytes - before.bytes) / k,
      observerEventLeaves: observers.map(
        (c, j) => (presence.leavesOf[c.index] ?? 0) - (leavesBefore[j] ?? 0),
      ),
      /** eventRoomState frames meanwhile (a gateway that missed broadcasts resent the room). */
      roomStates: presence.roomStates - statesBefore,
      cpuMsPerLeave: perUnit(cpuMs, leavers.length, 1),
      /** The observers close → their sockets closed, and → the room's row is gone, ms. */
      observersCloseMs: Math.round(closeMs),
      roomGoneMs: Math.round(performance.now() - t1),
    };
  } finally {
    stop.abort();
  }
}

// ------------------------------------------------------------------------------------- run

async function run(opts: Options, benchRun: BenchRun) {
  const { failure, cleanup, anomalies } = benchRun;
  const n = opts.members;
  const capacity = Math.max(50, n);
  const platform = await startSignalingPlatform(
    {
      gateways: opts.gateways,
      rooms: 1,
      joinWaitMs: opts.timeoutMs,
      maxInflight: 32,
      roomCapacity: capacity,
    },
    benchRun,
  );
  const db = new pg.Client({ connectionString: platform.databaseUrl });
  await db.connect();
  cleanup.add('close the database client', async () => {
    await db.end();
  });

  const joinTx = await runJoinTx(
    {
      databaseUrl: platform.databaseUrl,
      poolMax: platform.poolMax,
      joins: n,
      roomSize: n,
      capacity,
      concurrency: opts.concurrency,
      timeoutMs: opts.timeoutMs,
    },
    failure,
  );
  platform.rss.mark('idle');

  log(`minting ${n} tokens`);
  const secret = DEV_HS256_SECRET;
  const tokens = await Promise.all(
    Array.from(
      { length: n },
      async (_, i) => await mintToken({ secret, sub: `bench-user-${i}`, rooms: ['*'] }),
    ),
  );

  log(`connecting ${n} clients to ${platform.urls.join(' and ')}`);
  const conns: Conn[] = [];
  const connectMs = await connectAll(
    platform.urls,
    { clients: n, concurrency: opts.concurrency, timeoutMs: opts.timeoutMs },
    failure,
    cleanup,
    conns,
  );
  platform.rss.mark('connected');

  const roomId = `bench-room-${randomBytes(4).toString('hex')}`;
  const presence = new Presence(n);
  const parsedNot = listen(conns, presence, failure);
  const converged = presence.watch(
    conns.map((c) => c.index),
    n,
  );
  log(`${n} joins into ${roomId} (${opts.concurrency} at once, batchEvents ${opts.batch})`);
  const load = clientLoad();
  const cpu = platform.cpu.start();
  const t0 = performance.now();
  // A line every 10 s: a room that takes long still tells how far it got.
  let before = { at: t0, joinRs: 0 };
  const ticker = setInterval(() => {
    const now = { at: performance.now(), joinRs: presence.joinRs };
    const rate = ((now.joinRs - before.joinRs) * 1000) / (now.at - before.at);
    before = now;
    const rss = Object.entries(platform.rss.read())
      .map(([name, mb]) => `${name} ${Math.round(mb)}`)
      .join(', ');
    log(
      `${now.joinRs} joined (${Math.round(rate)}/s lately), ${presence.joins} eventJoins ` +
        `heard, ${presence.waiting} clients not knowing all; RSS MiB: ${rss}`,
    );
  }, 10_000);
  cleanup.add('stop the progress lines', async () => {
    clearInterval(ticker);
  });
  const joined = await failure.guard(
    `${n} joins`,
    opts.timeoutMs,
    joinAll(conns, tokens, roomId, opts, presence, failure, anomalies),
  );
  const joinCpuMs = cpu();
  const lastJoinR = joined.lastAt;
  const joinSeconds = (lastJoinR - t0) / 1000;
  log(`all joined in ${joinSeconds.toFixed(1)} s; waiting until every client knows all ${n}`);
  const convergedAt = await failure.guard(
    'every client knowing every member',
    opts.timeoutMs,
    converged,
    () =>
      `${presence.waiting} of ${n} clients still waiting; ` +
      `${presence.joins} of ${(n * (n - 1)) / 2} eventJoins heard so far`,
  );
  clearInterval(ticker);
  const convergedCpuMs = cpu();
  const joinLoad = load();
  platform.rss.mark('joined');
  const clientsRssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);
  const frames = received(conns);
  const joinEvents = {
    heard: presence.joins,
    expected: (n * (n - 1)) / 2,
    alreadyCounted: presence.staleJoins,
    roomStates: presence.roomStates,
    /** Frames taken by their first bytes, never parsed as JSON. */
    notParsed: parsedNot.raw,
  };
  // An eventRoomState stands for the eventJoins its client missed: then fewer are heard.
  if (presence.roomStates === 0 && presence.joins !== joinEvents.expected)
    anomalies.push(`${presence.joins} eventJoins counted, ${joinEvents.expected} expected`);
  if (presence.early > 0 || presence.overshoots > 0)
    anomalies.push(
      `${presence.early} events before their client's joinR, ${presence.overshoots} counts over ${n}`,
    );

  log(`listing the ${n} members`);
  const listing = await listAll(joined, conns, opts, failure, anomalies);
  platform.rss.mark('listed');

  log(`${n - opts.gateways} leave at once (one observer per gateway stays)`);
  const leave = await leaveAll(
    conns,
    opts.gateways,
    roomId,
    db,
    platform.cpu,
    presence,
    opts,
    failure,
  );
  const rss = platform.rss.stop();
  log('done');

  const joinMs = Array.from(joined.ms);
  const tenth = Math.ceil(n / 10);
  return {
    gateways: platform.urls,
    setup: platform.setup,
    connectMs: stats(connectMs),
    join: {
      ms: stats(joinMs),
      /** The first and the last 1000 joins (at most half each), in the order sent. */
      ends: ends(joinMs, 1000),
      /** Join → joinR by tenth of the room (joins 1–N/10, …), in the order sent. */
      byTenth: Array.from({ length: 10 }, (_, i) =>
        stats(joinMs.slice(i * tenth, (i + 1) * tenth)),
      ),
      seconds: Math.round(joinSeconds * 1000) / 1000,
      perSecond: Math.round(n / joinSeconds),
      /** CPU ms per join of each process (group): until the last joinR, and until converged. */
      cpuMsPerJoin: perUnit(joinCpuMs, n, 1),
      cpuMsPerJoinConverged: perUnit(convergedCpuMs, n, 1),
      client: joinLoad,
    },
    presence: {
      /** The last joinR → every client knows all N members, ms. */
      convergeMs: Math.round(convergedAt - lastJoinR),
      /** The first join sent → every client knows all N, ms. */
      totalMs: Math.round(convergedAt - t0),
      /** What all clients received from their connects until then. */
      frames: frames.frames,
      bytes: frames.bytes,
      batches: frames.batches,
      batchedEvents: frames.batchedEvents,
      events: joinEvents,
    },
    listing,
    leave,
    memory: memoryFigures(rss, platform.gatewayNames, n),
    clientsRssMiB,
    joinTx,
    otherEvents: otherEvents(conns),
  };
}

/** Each process's VmRSS at each phase's end, its peak, and what a member added, KiB. */
function memoryFigures(rss: RssResult, gatewayNames: readonly string[], members: number) {
  const perProcess = Object.fromEntries(
    Object.keys(rss.peakMiB).map((name) => {
      const at = (mark: string): number => rss.marks[mark]?.[name] ?? NaN;
      // A gateway holds its share of the members' sockets; the rooms service knows them all.
      const share = gatewayNames.includes(name)
        ? Math.ceil(members / gatewayNames.length)
        : members;
      return [
        name,
        {
          idleMiB: at('idle'),
          connectedMiB: at('connected'),
          joinedMiB: at('joined'),
          listedMiB: at('listed'),
          peakMiB: rss.peakMiB[name] ?? NaN,
          hwmMiB: rss.hwmMiB[name] ?? NaN,
          members: share,
          kibPerMember: Math.round(((at('joined') - at('idle')) * 1024) / share),
        },
      ];
    }),
  );
  return { perProcess, samples: rss.samples, everyMs: rss.everyMs, longestGapMs: rss.longestGapMs };
}

// ---------------------------------------------------------------------------------- report

type Result = Awaited<ReturnType<typeof run>>;

function report(opts: Options, r: Result, load: { start: number[]; end: number[] }): string {
  const n = opts.members;
  const int = (x: number): string => Math.round(x).toLocaleString('en-US');
  const mib = (x: number): string => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
  const ratio = Math.round((r.join.perSecond / r.joinTx.perSecond) * 100) / 100;
  const p = r.presence;
  const states = (k: number): string => (k === 0 ? '' : ` (${int(k)} eventRoomState)`);
  const rows: [string, string, string][] = [
    ['connect, ms (p50 / p99 / max)', fmt(r.connectMs, true), '—'],
    ['join, ms (p50 / p99 / max)', fmt(r.join.ms, true), fmt(r.joinTx.ms, true)],
    [
      `  first ${r.join.ends.n} joins (p50 / p99)`,
      fmt(r.join.ends.first),
      fmt(r.joinTx.ends.first),
    ],
    [`  last ${r.join.ends.n} joins (p50 / p99)`, fmt(r.join.ends.last), fmt(r.joinTx.ends.last)],
    ['joins per second', int(r.join.perSecond), `${int(r.joinTx.perSecond)} (ratio ${ratio})`],
    [
      '  CPU per join, ms (to last joinR)',
      cpuText(r.join.cpuMsPerJoin),
      cpuText(r.joinTx.cpuMsPerJoin),
    ],
    ['  the same, until all know all', cpuText(r.join.cpuMsPerJoinConverged), '—'],
    [
      "  clients' process: CPU, loop busy",
      `${r.join.client.cpuPercent}%, ${r.join.client.loopBusyPercent}% (RSS ${r.clientsRssMiB} MiB)`,
      '—',
    ],
    [
      `last joinR → all ${int(n)} know all, ms`,
      int(p.convergeMs) + states(p.events.roomStates),
      '—',
    ],
    ['  first join → all know all, ms', int(p.totalMs), '—'],
    [
      '  frames / MB received (all clients)',
      `${int(p.frames)} / ${(p.bytes / 1e6).toFixed(1)} (${int(p.events.heard + p.events.alreadyCounted)} eventJoin, ${int(p.events.alreadyCounted)} of them already in joinR${p.batches > 0 ? `, ${int(p.batches)} eventBatch` : ''})`,
      '—',
    ],
    [
      `listing: ${int(r.listing.members)} members, ms`,
      `${int(r.listing.ms)} (joinR + ${r.listing.pages} listMembers, p50 ${fmt(r.listing.pageMs).split(' / ')[0] ?? '—'} ms)`,
      '—',
    ],
    [
      '  largest page, bytes',
      `${int(r.listing.largestPageBytes)} (joinR ${int(r.listing.joinRBytes)})`,
      '—',
    ],
    [
      `leave: ${int(r.leave.leavers)} close → observers heard all, ms`,
      int(r.leave.heardMs) + states(r.leave.roomStates),
      '—',
    ],
    ['  → rooms database holds observers only, ms', int(r.leave.databaseMs), '—'],
    ['  CPU per leave, ms', cpuText(r.leave.cpuMsPerLeave), '—'],
    [`  last ${r.leave.observers} close → room gone, ms`, int(r.leave.roomGoneMs), '—'],
    ...Object.entries(r.memory.perProcess).map(([name, m]): [string, string, string] => [
      `${name} RSS, MiB (idle / joined / peak)`,
      `${mib(m.idleMiB)} / ${mib(m.joinedMiB)} / ${mib(m.hwmMiB)} (${m.kibPerMember} KiB per member)`,
      '—',
    ]),
  ];
  const head: [string, string, string] = [
    '',
    `platform (${opts.gateways} gateway${opts.gateways === 1 ? '' : 's'} + rooms)`,
    'baseline (bare pg join transaction)',
  ];
  const tenths = r.join.byTenth.map((s: Stats | undefined) =>
    s === undefined ? '—' : fmt(s).split(' / ')[0],
  );
  const others = Object.entries(r.otherEvents);
  return [
    `room benchmark: ${int(n)} members in one room through ${opts.gateways} gateway${opts.gateways === 1 ? '' : 's'}, ` +
      `${opts.concurrency} joins at once, batchEvents ${opts.batch ? 'asked for' : 'not asked for'}`,
    `${machineLine()}, ` +
      `load average ${load.start.map((x) => x.toFixed(1)).join(' ')} at start, ` +
      `${load.end.map((x) => x.toFixed(1)).join(' ')} at the end`,
    '',
    ...columns([head, ...rows]),
    '',
    `join p50 by tenth of the room, ms: ${tenths.join(', ')}`,
    ...(others.length === 0
      ? []
      : [`other events the clients got: ${others.map(([k, v]) => `${k} ×${v}`).join(', ')}`]),
    '',
    'join: from sending join to joinR; the baseline one bare pg transaction into the same room.',
    'presence: each client counts joinR roomSize + eventJoins − eventLeaves.',
    'leave: one client per gateway stays and counts the eventLeaves; the rooms database is polled.',
    "RSS: VmRSS before the clients connected and once all knew all; peak: VmHWM (the kernel's).",
    'The clients run in this one process; its CPU use shows whether they were the bottleneck.',
  ].join('\n');
}

await runBench(cli.usage, async (benchRun) => {
  const opts = parseOptions();
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const result = await run(opts, benchRun);
  benchRun.failure.check();
  const load = { start: loadStart, end: os.loadavg() };
  const text = report(opts, result, load);
  return finishRun(
    'room',
    startedAt,
    { text, anomalies: benchRun.anomalies },
    {
      options: opts,
      machine: { loadAverage: load },
      platform: { ...result, joinTx: undefined },
      baseline: { joinTx: result.joinTx },
    },
  );
});
