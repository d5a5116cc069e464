/**
 * Parked webhook events: see them, and deliver them again.
 *
 *   node services/events/src/webhooks-admin.ts list   [--endpoint <hash>] [--room <roomId>]
 *   node services/events/src/webhooks-admin.ts replay [--endpoint <hash>] [--room <roomId>]
 *                                                     [--id <eventId>]
 *
 * `list` prints one JSON line per parked event (stream sequence, endpoint hash, event id,
 * room, error, attempts, when; not the body). `replay` POSTs each matching event again, in
 * stream order, to the endpoint of WEBHOOK_URLS with that hash — the same body, freshly
 * signed — and removes it from the parked stream once the endpoint answered 2xx; one that
 * fails again stays. A replayed event arrives after later events of its room: receivers
 * order by `seq` and de-duplicate by `id`.
 *
 * The events service's environment: NATS_URL, NATS_SUBJECT_PREFIX and its NATS identity
 * (`events`), API_KEYS (or API_KEYS_FILE), WEBHOOK_URLS, WEBHOOK_API_KEY, WEBHOOK_TIMEOUT_MS.
 * Exits 0; 1 when an event could not be delivered or a request failed; 2 on bad usage; 78 on
 * a bad environment.
 */
import { parseArgs } from 'node:util';
import { JetStreamApiError, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsAuthOptions, type BusAuth } from '@switchboard/bus';
import {
  EventsConfig,
  RoomId,
  WebhookEndpointHash,
  formatIssues,
  parkedWebhook,
  validator,
  webhookBody,
  webhookParkedStream,
  type ParkedWebhook,
} from '@switchboard/protocol';
import { ConfigError, EXIT_CONFIG, loadConfig, natsAuth } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { WebhookSender } from './webhooks/sender.ts';
import { webhookSettings, type WebhookSettings } from './webhooks/settings.ts';

const USAGE = `usage: webhooks-admin.ts list   [--endpoint <hash>] [--room <roomId>]
       webhooks-admin.ts replay [--endpoint <hash>] [--room <roomId>] [--id <eventId>]`;
/** JetStream's "no message found". */
const NO_MESSAGE = 10037;

class UsageError extends Error {}

interface Filter {
  endpoint?: string | undefined;
  room?: string | undefined;
  id?: string | undefined;
}

function parse(argv: string[]): { command: 'list' | 'replay'; filter: Filter } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      room: { type: 'string' },
      id: { type: 'string' },
    },
  });
  const [command] = positionals;
  if (command !== 'list' && command !== 'replay') throw new UsageError('list or replay');
  if (values.endpoint !== undefined && !validator(WebhookEndpointHash).check(values.endpoint)) {
    throw new UsageError('--endpoint: 16 hex digits (the hash in logs and metrics)');
  }
  if (values.room !== undefined && !validator(RoomId).check(values.room)) {
    throw new UsageError('--room: not a room id');
  }
  return { command, filter: values };
}

function print(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Every parked record matching `filter`, in stream order, with its stream sequence. */
async function* parked(
  jsm: JetStreamManager,
  stream: string,
  filter: Filter,
): AsyncGenerator<{ seq: number; record: ParkedWebhook }> {
  const info = await jsm.streams.info(stream);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
    let m;
    try {
      m = await jsm.streams.getMessage(stream, { seq });
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === NO_MESSAGE) continue;
      throw err;
    }
    if (m === null) continue;
    let json: unknown;
    try {
      json = m.json();
    } catch {
      json = undefined;
    }
    const parsedRecord = parkedWebhook.parse(json);
    if (!parsedRecord.ok) {
      process.stderr.write(`parked ${String(seq)}: not a parked webhook record; skipped\n`);
      continue;
    }
    const r = parsedRecord.value;
    if (filter.endpoint !== undefined && r.endpoint !== filter.endpoint) continue;
    if (filter.room !== undefined && r.roomId !== filter.room) continue;
    if (filter.id !== undefined && r.eventId !== filter.id) continue;
    yield { seq, record: r };
  }
}

async function replay(
  jsm: JetStreamManager,
  stream: string,
  settings: WebhookSettings,
  filter: Filter,
): Promise<number> {
  const sender = new WebhookSender({
    keyId: settings.keyId,
    secret: settings.secret,
    timeoutMs: settings.timeoutMs,
    userAgent: `Switchboard-Webhooks/${pkg.version}`,
  });
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      stop.abort();
    });
  }
  let failed = 0;
  for await (const { seq, record } of parked(jsm, stream, filter)) {
    if (stop.signal.aborted) break;
    const endpoint = settings.endpoints.find((e) => e.hash === record.endpoint);
    const eventId = record.eventId;
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      body = undefined;
    }
    const valid = webhookBody.parse(body);
    if (endpoint === undefined || eventId === undefined || !valid.ok) {
      failed++;
      print({
        seq,
        eventId,
        endpoint: record.endpoint,
        result: 'skipped',
        why:
          endpoint === undefined
            ? 'no endpoint of WEBHOOK_URLS has this hash'
            : valid.ok
              ? 'no event id'
              : `not a valid webhook body (${formatIssues(valid.issues)})`,
      });
      continue;
    }
    const result = await sender.post(endpoint, eventId, record.body, stop.signal);
    if (result.ok) {
      await jsm.streams.deleteMessage(stream, seq, false);
      print({ seq, eventId, endpoint: endpoint.hash, result: 'delivered', status: result.status });
    } else {
      failed++;
      print({ seq, eventId, endpoint: endpoint.hash, result: 'failed', error: result.error });
    }
  }
  return failed === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  let config: EventsConfig;
  let auth: BusAuth;
  let settings: WebhookSettings | undefined;
  try {
    config = loadConfig(EventsConfig);
    auth = natsAuth(config, 'events');
    settings = webhookSettings(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (args.command === 'replay' && settings === undefined) {
    process.stderr.write('replay: WEBHOOK_URLS is not set\n');
    return EXIT_CONFIG;
  }
  const nc = await connect({
    ...natsAuthOptions(auth),
    servers: config.NATS_URL.split(','),
    name: 'switchboard-webhooks-admin',
  });
  try {
    const jsm = await jetstreamManager(nc, { timeout: config.NATS_REQUEST_TIMEOUT_MS });
    const stream = webhookParkedStream(config.NATS_SUBJECT_PREFIX);
    if (args.command === 'list') {
      for await (const { seq, record } of parked(jsm, stream, args.filter)) {
        const { body: _body, ...rest } = record;
        print({ seq, ...rest });
      }
      return 0;
    }
    if (settings === undefined) return EXIT_CONFIG;
    return await replay(jsm, stream, settings, args.filter);
  } finally {
    await nc.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`webhooks-admin: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
