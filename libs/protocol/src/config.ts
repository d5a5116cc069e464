/**
 * Environment configuration of every service, as schemas. Services validate their
 * environment against these at start (and exit naming the bad variable); the
 * configuration table (docs/configuration.md) is generated from them (`./run docs`), so it
 * cannot drift. The settings all services have are config-common.ts's; the gateway's own,
 * config-gateway.ts's.
 */
import Type, { type Static } from 'typebox';
import {
  Millis,
  Path,
  Port,
  Secret,
  SecretText,
  apiKeys,
  common,
  natsAuth,
} from './config-common.ts';
import { DEFAULT_LADDER, GatewayConfig, LadderStep } from './config-gateway.ts';
import { ApiKeyId } from './credentials.ts';

export {
  CommonConfig,
  DEV_API_KEY,
  DEV_API_SECRET,
  DEV_HS256_SECRET,
  LogLevel,
  NatsAuthConfig,
  apiKeys,
  isSecretVariable,
} from './config-common.ts';
export { DEFAULT_LADDER, GatewayConfig, LadderStep } from './config-gateway.ts';

export const RoomsConfig = Type.Object({
  ...common(8081),
  DATABASE_URL: Type.String({
    pattern: '^postgres(ql)?://',
    default: 'postgresql://postgres@127.0.0.1:5432/switchboard',
    description: 'PostgreSQL connection string (its password is never logged: URLs are redacted)',
  }),
  DATABASE_POOL_MAX: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description: 'Connections in the PostgreSQL pool',
  }),
  ROOM_DEFAULT_CAPACITY: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 50,
    description:
      'Most sessions a room admits unless it has a capacity of its own (the server API: createRoom, updateRoom)',
  }),
  ROOM_EMPTY_TIMEOUT_S: Type.Integer({
    minimum: 0,
    maximum: 2_592_000,
    default: 300,
    description:
      'How long a room the server API creates waits for its first member, and is kept after its last one leaves, unless the request says otherwise (seconds). Rooms a join creates close with their last member',
  }),
  TELEMETRY_FLUSH_MS: Millis(
    2000,
    "How often clients' latest eventCpu figures are written to PostgreSQL (all of them in one statement)",
  ),
  ROOM_MAX_SESSIONS_PER_USER: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 4,
    description:
      'Most sessions one user (a token `sub`) holds in one room at once; beyond, `join` gets TOO_MANY_SESSIONS',
  }),
  RECONNECT_WINDOW_MS: Millis(
    30_000,
    'How long a dropped session stays in its room waiting for `reconnect`',
  ),
  GATEWAY_DEAD_AFTER_MS: Millis(
    10_000,
    'A gateway silent this long is dead: its sessions enter the reconnect window',
  ),
  SWEEP_INTERVAL_MS: Millis(1000, 'How often expired sessions and dead gateways are looked for'),
  OUTBOX_POLL_MS: Millis(
    500,
    'How often the room-events outbox is checked for events to publish (a membership change publishes within 20 ms)',
  ),
  OUTBOX_RETENTION_S: Type.Integer({
    minimum: 0,
    default: 86_400,
    description: 'How long published room events stay in the outbox table (for audit and replay)',
  }),
  EVENTS_STREAM_MAX_AGE_S: Type.Integer({
    minimum: 0,
    default: 604_800,
    description: 'How long the JetStream stream of room events keeps them (0: for ever)',
  }),
  EVENTS_STREAM_MAX_BYTES: Type.Integer({
    minimum: 0,
    default: 1_073_741_824,
    description:
      'The most bytes the JetStream stream of room events keeps; the oldest events go first (0: no limit)',
  }),
  EVENTS_DEDUP_WINDOW_S: Type.Integer({
    minimum: 1,
    default: 600,
    description:
      "The stream's de-duplication window: an event published again within it (a retry) is stored once",
  }),
  MEDIA_NODE_DEAD_AFTER_MS: Millis(
    6_000,
    'A media node silent this long is out of placement; its rooms move and their clients get eventMediaReset',
  ),
  USER_MEDIA_LADDER: Type.Array(LadderStep, {
    minItems: 1,
    maxItems: 32,
    default: DEFAULT_LADDER,
    description:
      'getUserMedia constraints by room size, JSON: the first step whose `maxSize` is at least the room size applies (the last step applies above all)',
  }),
});
export type RoomsConfig = Static<typeof RoomsConfig>;

export const MediaConfig = Type.Object({
  ...common(8082),
  MEDIASOUP_WORKERS: Type.Integer({
    minimum: 0,
    maximum: 256,
    default: 0,
    description: 'mediasoup workers to run (0: one per CPU core)',
  }),
  MEDIASOUP_LISTEN_IP: Type.String({
    minLength: 1,
    default: '127.0.0.1',
    description:
      'IP the WebRtcServers listen on (0.0.0.0 in containers, with an announced address)',
  }),
  MEDIASOUP_ANNOUNCED_ADDRESS: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'IP or hostname put in ICE candidates (the node or load balancer address)',
    }),
  ),
  MEDIASOUP_RTC_PORT: Port(
    40000,
    'First WebRtcServer port: worker i listens on this port + i, UDP and TCP (0: any free port)',
  ),
  MEDIASOUP_LOG_LEVEL: Type.Union(
    [Type.Literal('debug'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('none')],
    { default: 'warn', description: 'mediasoup worker log level' },
  ),
  MEDIASOUP_WORKER_BIN: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        "Path of the mediasoup-worker binary (default: the one the install step put in mediasoup's package)",
    }),
  ),
  MEDIASOUP_WORKER_MAX_LOAD: Type.Integer({
    minimum: 1,
    default: 1000,
    description:
      'Load (transports + consumers) a worker takes before a room that grows spreads to another worker through pipeToRouter',
  }),
  MEDIA_HEARTBEAT_MS: Type.Integer({
    minimum: 100,
    default: 2000,
    description: 'How often the node publishes its load and capacity on NATS',
  }),
  MEDIA_RECONCILE_MS: Type.Integer({
    minimum: 100,
    default: 10000,
    description:
      "How often the node checks its rooms' members with the rooms service (closes peers whose session ended)",
  }),
  MEDIA_FREEZE_CHECK_MS: Type.Integer({
    minimum: 100,
    default: 2000,
    description:
      "How often video producers' byte counts are checked: one that stops growing is a freeze",
  }),
  MEDIA_PLAIN_TRANSPORTS: Type.Boolean({
    default: false,
    description:
      'Allow createPlainTransport (plain RTP in and out, for members whose token has the broadcaster or recorder role)',
  }),
  MEDIA_PLAIN_ALLOWED_CIDRS: Type.String({
    pattern: '^[0-9A-Fa-f.:/, ]*$',
    default: '127.0.0.0/8,::1/128',
    description:
      "Where a receiving plain transport may send RTP (connectPlainTransport), comma-separated CIDRs; others get PERMISSION_DENIED. Set it to your recorders' network",
  }),
  MEDIA_RECV_TRANSPORTS_PER_MIN: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 12,
    description:
      'Receiving transports one user may create in one room per minute (each makes the node consume everything in the room); beyond, RATE_LIMITED',
  }),
  MEDIA_MAX_TRANSPORTS_PER_PEER: Type.Integer({
    minimum: 2,
    default: 4,
    description: 'WebRTC transports one session may hold (MEDIA_LIMIT beyond)',
  }),
  MEDIA_MAX_PRODUCERS_PER_PEER: Type.Integer({
    minimum: 1,
    default: 8,
    description: 'Producers and data producers one session may hold (MEDIA_LIMIT beyond)',
  }),
  MEDIA_INITIAL_OUTGOING_BITRATE: Type.Integer({
    minimum: 100_000,
    default: 1_000_000,
    description: 'initialAvailableOutgoingBitrate of WebRTC transports, bits per second',
  }),
});
export type MediaConfig = Static<typeof MediaConfig>;

export const EventsConfig = Type.Object({
  ...common(8083),
  ROOM_LIVE_INTERVAL_MS: Type.Integer({
    minimum: 100,
    maximum: 86_400_000,
    default: 60_000,
    description: 'How often room.live (a snapshot of every room with members) is published',
  }),
  LEADER_LEASE_MS: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: 15_000,
    description:
      'The leader lease (NATS KV TTL) of room.live and webhook delivery; renewed every third of it. Keep it at most 3/4 of ROOM_LIVE_INTERVAL_MS so a dead leader is replaced within one interval',
  }),
  ...apiKeys(),
  WEBHOOK_URLS: Secret(
    Type.Optional(
      Type.String({
        pattern: '^ *https?://[^\\s,]+( *, *https?://[^\\s,]+)* *$',
        maxLength: 16_384,
        description:
          'Webhook endpoints: http(s) URLs, comma-separated, each POSTed every durable room event, signed (absent: no webhooks). Never logged (a URL may hold a token): logs and metrics name an endpoint by the first 16 hex digits of its SHA-256',
      }),
    ),
  ),
  WEBHOOK_API_KEY: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9_-]{3,64}$',
      description:
        'The API key (an id in API_KEYS) whose secret signs the webhooks; required with WEBHOOK_URLS',
    }),
  ),
  WEBHOOK_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 120_000,
    default: 5000,
    description: 'A webhook POST not answered within this is aborted (and retried)',
  }),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description:
      "Attempts at one event (non-2xx, timeout, network error) before it is parked in the stream <P>_WEBHOOKS_PARKED; the room's later events go on",
  }),
  WEBHOOK_BACKOFF_MIN_MS: Millis(
    500,
    'Delay before the first retry of a webhook; doubles with each attempt (with jitter) up to WEBHOOK_BACKOFF_MAX_MS',
  ),
  WEBHOOK_BACKOFF_MAX_MS: Millis(60_000, 'Longest delay between two attempts at a webhook'),
  WEBHOOK_MAX_IN_FLIGHT: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 64,
    description:
      "Rooms whose webhooks are delivered at once, per endpoint (a room's own events go one at a time, in order)",
  }),
});
export type EventsConfig = Static<typeof EventsConfig>;

export const ApiConfig = Type.Object({
  ...common(8084),
  ...apiKeys(),
  API_TOKEN_MAX_TTL_S: Type.Integer({
    minimum: 10,
    maximum: 86_400,
    default: 600,
    description:
      'Longest life of a server API token, `exp - iat` (or `exp - now` without `iat`), seconds; a longer-lived one is refused (401)',
  }),
  API_CLOCK_TOLERANCE_S: Type.Integer({
    minimum: 0,
    maximum: 300,
    default: 30,
    description: "Clock skew allowed when checking a server API token's `exp` and `nbf`, seconds",
  }),
  API_BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 16 * 1024 * 1024,
    default: 131_072,
    description: 'Largest server API request body, bytes; a bigger one is refused (413)',
  }),
  API_DEV_KEYS: Type.Boolean({
    default: false,
    description:
      'Development only: accept the published development API key (`dev`, which `./run start` uses). Never on in production: anyone could call the server API with it',
  }),
});
export type ApiConfig = Static<typeof ApiConfig>;

/** The environment of a command-line tool that talks to the services over the bus. */
export const BusClientConfig = Type.Object({
  NATS_URL: common(0).NATS_URL,
  NATS_SUBJECT_PREFIX: common(0).NATS_SUBJECT_PREFIX,
  NATS_REQUEST_TIMEOUT_MS: common(0).NATS_REQUEST_TIMEOUT_MS,
  ...natsAuth(),
});
export type BusClientConfig = Static<typeof BusClientConfig>;

/**
 * The environment of a command-line tool that calls the server API with an API key (the rooms
 * admin command, services/rooms/src/admin.ts).
 */
export const ApiClientConfig = Type.Object({
  SWITCHBOARD_API_URL: Type.String({
    pattern: '^https?://[^\\s]+$',
    default: 'http://127.0.0.1:8084',
    description: 'Base URL of the server API (the api service)',
  }),
  SWITCHBOARD_API_KEY: Type.String({ ...ApiKeyId, description: 'The API key id' }),
  SWITCHBOARD_API_SECRET: SecretText('The API key’s secret (or SWITCHBOARD_API_SECRET_FILE)'),
  SWITCHBOARD_API_SECRET_FILE: Path('File holding the API key’s secret'),
  SWITCHBOARD_API_TIMEOUT_MS: Millis(10_000, 'Deadline of each request to the server API'),
});
export type ApiClientConfig = Static<typeof ApiClientConfig>;

export const ServiceConfigs = {
  gateway: GatewayConfig,
  rooms: RoomsConfig,
  media: MediaConfig,
  events: EventsConfig,
  api: ApiConfig,
} as const;
