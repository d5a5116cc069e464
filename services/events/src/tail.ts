/**
 * Tail the room events: a small analytics consumer, and an example of writing one.
 *
 *   node services/events/src/tail.ts [--room <roomId>] [--type <room.join,room.leave,…>]
 *                                    [--from <stream seq> | --since <ISO time | 10m | 2h> | --new]
 *                                    [--follow]
 *
 * Durable events (room.created, room.join, room.leave, room.closed) are read from the JetStream
 * stream with an ephemeral consumer the server names (the `tail` identity may create no named
 * or durable one, nor ack: see permissions.ts): from the start of the stream by default, from a stream
 * sequence, from a time, or only new ones; each line printed is
 * `{"stream": <seq>, "subject": …, "event": {…}}`, validated against libs/protocol. With
 * `--follow` it keeps waiting for new events (and also prints room.live snapshots, which are
 * not stored); without it, it stops at the end of the stream. `--room` keeps one room's events.
 *
 * NATS_URL, NATS_SUBJECT_PREFIX and the NATS credentials (NATS_USER…) as for the services, of
 * an analytics reader's identity (`tail`: it may read the stream, room.live and telemetry). Exits 0, 1 on a failure, 2 on bad
 * usage, 78 on a bad environment.
 */
import { parseArgs } from 'node:util';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
} from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  BusClientConfig,
  RoomId,
  roomEvent,
  roomEventStream,
  roomEventSubject,
  validator,
  type RoomEventName,
} from '@switchboard/protocol';
import { natsAuthOptions, type BusAuth } from '@switchboard/bus';
import { ConfigError, EXIT_CONFIG, loadConfig, natsAuth } from '@switchboard/service';

const DURABLE = ['room.created', 'room.join', 'room.leave', 'room.closed'] as const;
const ALL: readonly RoomEventName[] = [...DURABLE, 'room.live'];
const roomId = validator(RoomId);

const USAGE = `usage: tail.ts [--room <roomId>] [--type <room.join,room.leave,...>]
               [--from <stream seq> | --since <ISO time | 10m | 2h> | --new] [--follow]`;

class UsageError extends Error {}

/** Where the consumer starts. */
type Start = Pick<ConsumerConfig, 'deliver_policy'> &
  Partial<Pick<ConsumerConfig, 'opt_start_seq' | 'opt_start_time'>>;

/** An ephemeral consumer left behind (the process killed) goes away after this, ns. */
const INACTIVE_THRESHOLD_NS = 30_000 * 1_000_000;

interface Options {
  room: string | undefined;
  types: RoomEventName[];
  start: Start;
  follow: boolean;
}

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      room: { type: 'string' },
      type: { type: 'string' },
      from: { type: 'string' },
      since: { type: 'string' },
      new: { type: 'boolean' },
      follow: { type: 'boolean', short: 'f' },
    },
  });
  const room = values.room;
  if (room !== undefined && !roomId.parse(room).ok) {
    throw new UsageError(`--room: not a room id: ${room}`);
  }
  const types = (values.type?.split(',') ?? [...ALL]).map((t) => t.trim());
  for (const t of types) {
    if (!(ALL as readonly string[]).includes(t)) {
      throw new UsageError(`--type: ${t} is not one of ${ALL.join(', ')}`);
    }
  }
  const starts = [values.from, values.since, values.new].filter((v) => v !== undefined);
  if (starts.length > 1) throw new UsageError('one of --from, --since, --new');
  let start: Start = { deliver_policy: DeliverPolicy.All };
  if (values.from !== undefined) {
    const seq = Number(values.from);
    if (!Number.isInteger(seq) || seq < 1) throw new UsageError('--from: a stream sequence >= 1');
    start = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq };
  } else if (values.since !== undefined) {
    start = { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since(values.since) };
  } else if (values.new === true) {
    start = { deliver_policy: DeliverPolicy.New };
  }
  return {
    room: values.room,
    types: types as RoomEventName[],
    start,
    follow: values.follow === true,
  };
}

/** `10m`, `2h`, `30s`, `1d` ago, or an ISO time, as an ISO time. */
function since(v: string): string {
  const rel = /^(\d+)([smhd])$/.exec(v);
  if (rel !== null) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      rel[2] as 's' | 'm' | 'h' | 'd'
    ];
    return new Date(Date.now() - Number(rel[1]) * unit).toISOString();
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--since: not a time: ${v}`);
  return new Date(t).toISOString();
}

function print(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(argv: string[]): Promise<number> {
  let config: BusClientConfig;
  let auth: BusAuth;
  try {
    config = loadConfig(BusClientConfig);
    auth = natsAuth(config, 'tail');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  let opts: Options;
  try {
    opts = parse(argv);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  const prefix = config.NATS_SUBJECT_PREFIX;
  const nc = await connect({
    ...natsAuthOptions(auth),
    servers: config.NATS_URL.split(','),
    name: 'switchboard-tail',
  });
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      stop.abort();
    });
  }
  const keep = (event: { roomId: string }): boolean =>
    opts.room === undefined || event.roomId === opts.room;
  try {
    if (opts.follow && opts.types.includes('room.live')) {
      nc.subscribe(roomEventSubject(prefix, 'room.live'), {
        callback: (err, msg) => {
          if (err !== null) return;
          const parsed = roomEvent['room.live'].parse(msg.json());
          if (parsed.ok && keep(parsed.value)) {
            print({ subject: msg.subject, event: parsed.value });
          }
        },
      });
    }
    const durable = opts.types.filter((t): t is (typeof DURABLE)[number] => t !== 'room.live');
    if (durable.length > 0) {
      const js = jetstream(nc);
      // Types are kept here rather than by the server: several filter subjects need NATS 2.10,
      // and Debian bookworm ships 2.9.
      const stream = roomEventStream(prefix);
      const jsm = await jetstreamManager(nc);
      const created = await jsm.consumers
        .add(stream, {
          ...opts.start,
          ack_policy: AckPolicy.None,
          mem_storage: true,
          inactive_threshold: INACTIVE_THRESHOLD_NS,
        })
        .catch((err: unknown) => {
          if (!(
            err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound
          )) {
            throw err;
          }
          throw new Error(
            `no stream ${stream}: no room event was ever published under "${prefix}" (NATS_SUBJECT_PREFIX)`,
            { cause: err },
          );
        });
      const consumer = await js.consumers.get(stream, created.name);
      // Without --follow, stop at the end of the stream (at once when it is empty).
      if (!opts.follow && (await consumer.info()).num_pending === 0) return 0;
      const messages = await consumer.consume();
      stop.signal.addEventListener('abort', () => {
        void messages.close();
      });
      for await (const m of messages) {
        const type = m.subject.slice(prefix.length + 1) as (typeof DURABLE)[number];
        if (durable.includes(type)) {
          const parsed = roomEvent[type].parse(m.json());
          if (!parsed.ok) {
            process.stderr.write(`stream ${String(m.seq)}: not a valid ${type}; skipped\n`);
          } else if (keep(parsed.value)) {
            print({ stream: m.seq, subject: m.subject, event: parsed.value });
          }
        }
        if (!opts.follow && m.info.pending === 0) break;
      }
    } else if (opts.follow) {
      await new Promise<void>((resolve) => {
        stop.signal.addEventListener('abort', () => {
          resolve();
        });
      });
    }
    return 0;
  } finally {
    await nc.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`tail: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
