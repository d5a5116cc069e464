/**
 * Environment configuration of every service, as schemas. Services validate their
 * environment against these at start (and exit naming the bad variable); the
 * configuration table (docs/configuration.md) is generated from them (`./run docs`), so it cannot drift.
 *
 * Secrets: a variable whose value must never be printed carries `secret: true` in its schema
 * (`Secret(...)` below). The config loader then never echoes its value in an error — nor the
 * value of any variable whose name looks secret (redact.ts `isSecretName`) — and the
 * credentials of URLs in any other value are redacted.
 */
import Type, { type Static, type TProperties, type TSchema } from 'typebox';
import { SubjectPrefix } from './bus.ts';
import { EVENT_BATCH_MAX_ITEMS } from './client.ts';
import { ApiKeyId } from './credentials.ts';
import { isSecretName } from './redact.ts';

/**
 * The HS256 secret of local development (`./run start`, the tests, the benchmarks): it is
 * published here, so a gateway refuses to start with it unless GATEWAY_DEV_TOKENS is on.
 */
export const DEV_HS256_SECRET = 'switchboard-dev-secret-do-not-use-in-production-0123456789';

/**
 * The API key of local development (`./run start`, the tests, the benchmarks): key id
 * DEV_API_KEY with secret DEV_API_SECRET. Published here, so the api service refuses it
 * unless API_DEV_KEYS is on.
 */
export const DEV_API_KEY = 'dev';
export const DEV_API_SECRET = 'switchboard-dev-api-secret-do-not-use-in-production-01234';

/** Mark a variable's schema as secret: its value is never printed (config errors, logs). */
function Secret<T extends TSchema>(schema: T): T {
  return Object.assign(schema, { secret: true });
}

/** Whether a variable's value must never be printed: marked `secret`, or named like one. */
export function isSecretVariable(name: string, schema?: TSchema): boolean {
  const marked: { secret?: unknown } = schema ?? {};
  return marked.secret === true || isSecretName(name);
}

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
const Millis = (def: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 3_600_000, default: def, description });

export const LogLevel = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
);

const Path = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));
const SecretText = (description: string) =>
  Secret(Type.Optional(Type.String({ minLength: 1, writeOnly: true, description })));

/**
 * This process's identity on NATS (libs/protocol/src/permissions.ts says what each may do):
 * one of a user and password, an NKey seed, or a `.creds` file; and TLS. Every secret can
 * come from a file (`*_FILE`, e.g. a mounted Kubernetes Secret) instead of the environment.
 */
function natsAuth() {
  return {
    NATS_USER: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'NATS user name (with NATS_PASSWORD or NATS_PASSWORD_FILE)',
      }),
    ),
    NATS_PASSWORD: SecretText('NATS password of NATS_USER (or NATS_PASSWORD_FILE)'),
    NATS_PASSWORD_FILE: Path('File holding the NATS password of NATS_USER'),
    NATS_NKEY_SEED: SecretText(
      'NKey seed (`SU…`) of this identity, instead of a user and password (or NATS_NKEY_SEED_FILE)',
    ),
    NATS_NKEY_SEED_FILE: Path('File holding the NKey seed of this identity'),
    NATS_CREDS_FILE: Path(
      '`.creds` file (user JWT and NKey seed, as `nsc` writes it) of this identity, for a NATS server in operator (JWT) mode',
    ),
    NATS_TLS_CA_FILE: Path('PEM file of the CA(s) that sign the NATS server certificate'),
    NATS_TLS_CERT_FILE: Path(
      'PEM client certificate for NATS servers that verify clients (with NATS_TLS_KEY_FILE)',
    ),
    NATS_TLS_KEY_FILE: Path('PEM private key of NATS_TLS_CERT_FILE'),
  } satisfies TProperties;
}

/**
 * The API keys of the server API (services/api: each request is a token signed with a key's
 * secret) and of webhook signatures (services/events). Either inline or as a file.
 */
export function apiKeys() {
  return {
    API_KEYS: SecretText(
      'API keys and their secrets: `key:secret` pairs separated by commas or whitespace; a key is 3-64 letters, digits, `_` or `-`, a secret at least 32 characters (or API_KEYS_FILE)',
    ),
    API_KEYS_FILE: Path(
      'File of API keys, `key:secret` per line (e.g. a mounted Kubernetes Secret); instead of API_KEYS',
    ),
  } satisfies TProperties;
}

function common(httpPort: number) {
  return {
    LOG_LEVEL: Type.Union(LogLevel.anyOf, {
      default: 'info',
      description:
        'pino log level. Each HTTP request is logged once answered, one line (method, URL with secret query parameters redacted, status, ms): at `info` by the api service (its audit trail, with the caller’s key), at `debug` by the others; /healthz, /readyz and the ops servers never are',
    }),
    HTTP_HOST: Type.String({
      minLength: 1,
      default: '0.0.0.0',
      description:
        'Address the HTTP server (/healthz, /readyz; the WebSocket API and the demo on the gateway) binds',
    }),
    HTTP_PORT: Port(httpPort, 'Port of the HTTP server (0 picks a free port)'),
    OPS_HOST: Type.String({
      minLength: 1,
      default: '0.0.0.0',
      description:
        "Address the ops HTTP server binds: /metrics, /healthz, /readyz (and the gateway's status page and /api/status). Keep it off the public path: Prometheus and probes reach it on the pod network",
    }),
    OPS_PORT: Port(
      httpPort + 1000,
      'Port of the ops HTTP server (0 picks a free port); must differ from HTTP_PORT',
    ),
    HTTP_CONNECTION_TIMEOUT_MS: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 60_000,
      description:
        'An HTTP connection idle this long is closed (0: never). A WebSocket, once upgraded, is not subject to it (WS_IDLE_TIMEOUT_MS is)',
    }),
    HTTP_REQUEST_TIMEOUT_MS: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 30_000,
      description: 'Longest time to receive a whole HTTP request (0: no limit)',
    }),
    HTTP_HEADERS_TIMEOUT_MS: Type.Integer({
      minimum: 1,
      maximum: 3_600_000,
      default: 10_000,
      description:
        "Longest time to receive an HTTP request's headers (slow clients); at most HTTP_REQUEST_TIMEOUT_MS",
    }),
    HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({
      minimum: 1,
      maximum: 3_600_000,
      default: 72_000,
      description:
        "How long an idle keep-alive HTTP connection is kept; longer than a load balancer's idle timeout (60 s on many)",
    }),
    HTTP_TRUST_PROXY: Type.String({
      pattern: '^(true|false|[0-9]{1,2}|[0-9a-fA-F.:/]+(,[0-9a-fA-F.:/]+)*)$',
      default: 'false',
      description:
        "Whose X-Forwarded-For to believe for a client's address: false, true (any), a hop count, or proxy addresses/CIDRs, comma-separated",
    }),
    NATS_URL: Type.String({
      minLength: 1,
      pattern: '^(nats|tls|ws|wss)://[^\\s,]+(,(nats|tls|ws|wss)://[^\\s,]+)*$',
      default: 'nats://127.0.0.1:4222',
      description:
        'NATS server URL(s), comma-separated; credentials in them (user:password@ or a token@) are never logged',
    }),
    NATS_SUBJECT_PREFIX: Type.String({
      ...SubjectPrefix,
      default: 'sb',
      description: 'First token(s) of every subject, so deployments can share one NATS',
    }),
    NATS_REQUEST_TIMEOUT_MS: Millis(5000, 'Default deadline of a request to another service'),
    BUS_MAX_CONCURRENT: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 1024,
      description:
        'Bus messages (requests, events) one instance handles at once; beyond, requests get SERVICE_UNAVAILABLE at once and other messages are dropped (`sb_bus_shed_total`), never queued',
    }),
    ...natsAuth(),
    SHUTDOWN_TIMEOUT_MS: Millis(
      15_000,
      'Longest graceful shutdown before the process exits anyway',
    ),
    INSTANCE_ID: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{1,64}$',
        description: 'Identity of this instance on the bus (default: hostname + random suffix)',
      }),
    ),
  } satisfies TProperties;
}

/**
 * The settings every service has (each service's schema below includes them, with its own
 * default ports): what libs/service reads for itself. Its type is the one place they are
 * typed.
 */
export const CommonConfig = Type.Object(common(0));
export type CommonConfig = Static<typeof CommonConfig>;

/** How a process authenticates to NATS (part of CommonConfig). */
export const NatsAuthConfig = Type.Object({
  NATS_SUBJECT_PREFIX: common(0).NATS_SUBJECT_PREFIX,
  ...natsAuth(),
});
export type NatsAuthConfig = Static<typeof NatsAuthConfig>;

/** One step of the room-size ladder of getUserMedia constraints. */
export const LadderStep = Type.Object({
  maxSize: Type.Integer({ minimum: 1 }),
  width: Type.Integer({ minimum: 16, maximum: 7680 }),
  height: Type.Integer({ minimum: 16, maximum: 4320 }),
  frameRate: Type.Integer({ minimum: 1, maximum: 120 }),
});
export type LadderStep = Static<typeof LadderStep>;

export const DEFAULT_LADDER: LadderStep[] = [
  { maxSize: 2, width: 1280, height: 720, frameRate: 30 },
  { maxSize: 4, width: 960, height: 540, frameRate: 30 },
  { maxSize: 9, width: 640, height: 360, frameRate: 24 },
  { maxSize: 16, width: 480, height: 270, frameRate: 20 },
  { maxSize: 100_000, width: 320, height: 180, frameRate: 15 },
];

export const GatewayConfig = Type.Object({
  ...common(8080),
  AUTH_HS256_SECRET: Type.Optional(
    Secret(
      Type.String({
        minLength: 32,
        description:
          'Shared secret of HS256 bearer tokens (at least 32 characters). Set it, AUTH_RS256_PUBLIC_KEYS, or both. The published development secret is refused unless GATEWAY_DEV_TOKENS is on',
      }),
    ),
  ),
  AUTH_RS256_PUBLIC_KEYS: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'PEM public key(s) (SPKI, concatenated) of RS256 bearer tokens; a token with a `kid` header must name one by its RFC 7638 thumbprint',
    }),
  ),
  AUTH_AUDIENCE: Type.String({
    minLength: 1,
    default: 'switchboard',
    description: 'Required `aud` of bearer tokens',
  }),
  AUTH_ISSUER: Type.Optional(
    Type.String({ minLength: 1, description: 'Required `iss` of bearer tokens, when set' }),
  ),
  AUTH_CLOCK_TOLERANCE_S: Type.Integer({
    minimum: 0,
    maximum: 300,
    default: 5,
    description: 'Clock skew allowed when checking `exp` and `nbf`, seconds',
  }),
  AUTH_MAX_TOKEN_TTL_S: Type.Integer({
    minimum: 60,
    maximum: 31 * 86_400,
    default: 86_400,
    description:
      'Longest life of a bearer token, `exp - iat` (or `exp - now` without `iat`), seconds; longer ones are refused',
  }),
  AUTH_JWKS_URL: Type.Optional(
    Type.String({
      pattern: '^https?://',
      description:
        'A JWKS of public keys (RS256, PS256, ES256, ES384, EdDSA) fetched and cached by `kid`; a token naming an unknown kid makes it fetch again (keys rotate without a restart). Beside or instead of the static keys',
    }),
  ),
  AUTH_JWKS_COOLDOWN_MS: Millis(
    30_000,
    'After a JWKS fetch, how long an unknown kid does not make it fetch again (a flood of bad kids costs one fetch per period)',
  ),
  AUTH_JWKS_MAX_AGE_MS: Millis(
    600_000,
    'The longest a fetched JWKS is used before it is fetched again',
  ),
  GATEWAY_LEGACY_RESUME: Type.Boolean({
    default: false,
    description:
      'UNSAFE: let `reconnect` resume a session by its socketId alone (clients of the original document that send no resumeToken). Anyone who learns a socketId — every member of the room does — can then take the session over',
  }),
  WS_MAX_FRAME_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 16 * 1024 * 1024,
    default: 65_536,
    description: 'Largest client frame; a bigger one closes the socket with 1009',
  }),
  WS_MAX_CONNECTIONS: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 20_000,
    description:
      'Client sockets one gateway holds; at the limit it reports not ready (`capacity` in /readyz) and closes new sockets with 1013',
  }),
  WS_MAX_BUFFERED_BYTES: Type.Integer({
    minimum: 65_536,
    maximum: 256 * 1024 * 1024,
    default: 4 * 1024 * 1024,
    description:
      'Bytes waiting to be sent to one socket; a client that reads slower is cut off (a drop: its session waits for it to reconnect)',
  }),
  WS_JOIN_TIMEOUT_MS: Millis(
    10_000,
    'A socket that has not joined (or reconnected) this long after it opened is closed with 1008',
  ),
  WS_ORIENTATION_INTERVAL_MS: Millis(
    1000,
    'A session writes at most one orientationChange per this interval to PostgreSQL; changes sent sooner are accepted and coalesced (the latest is written, and broadcast, when the interval has passed)',
  ),
  WS_BATCH_MIN_MEMBERS: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 50,
    description:
      'A room with this many members on one gateway gets its broadcasts in batches: gathered for WS_BATCH_MS, then written once per member, as one eventBatch frame to clients that read it (`batchEvents` in join) and as the single events to the others. 0: never',
  }),
  WS_BATCH_MS: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 50,
    description: `How long a big room's first pending broadcast waits for more before the batch is written (sooner when it holds ${String(EVENT_BATCH_MAX_ITEMS)} events, or before anything else reaches a member of the room)`,
  }),
  WS_ALLOWED_ORIGINS: Type.Optional(
    Type.String({
      pattern: '^ *(\\*|https?://[^\\s,/]+)( *, *(\\*|https?://[^\\s,/]+))* *$',
      description:
        "Origins (scheme://host[:port], comma-separated, or `*` for any) whose pages may open a WebSocket on /api; a request with another Origin gets 403. Default: only the gateway's own origin (its Host and scheme, X-Forwarded-Host/-Proto from proxies HTTP_TRUST_PROXY trusts). Requests without an Origin (native apps, servers) are always admitted",
    }),
  ),
  WS_MAX_CONNECTIONS_PER_IP: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 64,
    description:
      'Open sockets one client IP may hold (its address as HTTP_TRUST_PROXY resolves it); beyond, the upgrade is refused with 429 (or the socket closed with 1013)',
  }),
  WS_MAX_UNJOINED_PER_IP: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 8,
    description:
      'Sockets of one client IP that have not joined (or reconnected) yet; beyond, the upgrade is refused with 429 (or the socket closed with 1013)',
  }),
  WS_PING_INTERVAL_MS: Millis(10_000, 'How often the gateway pings each socket'),
  WS_IDLE_TIMEOUT_MS: Millis(
    30_000,
    'A socket silent (no frame, no pong) this long is closed; its session enters the reconnect window',
  ),
  WS_RATE_LIMIT_PER_S: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 50,
    description: 'Frames per second a connection may send on average',
  }),
  WS_RATE_LIMIT_BURST: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 200,
    description:
      'Frames a connection may send at once; beyond, requests get RATE_LIMITED, and a flood of twice this closes the socket with 1008',
  }),
  WS_MAX_INFLIGHT: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 32,
    description: 'Requests of one connection in progress at once; beyond, RATE_LIMITED',
  }),
  GATEWAY_HEARTBEAT_MS: Millis(
    2000,
    "How often a gateway announces it is alive (rooms' GATEWAY_DEAD_AFTER_MS should be 3x or more)",
  ),
  TURN_URLS: Type.Array(Type.String({ maxLength: 512, pattern: '^(stun|turns?):[^\\s]+$' }), {
    maxItems: 32,
    default: [],
    description:
      'STUN/TURN server URLs given to clients in `joinR` (`iceServers`), JSON, e.g. `["turn:turn.example.com:3478?transport=udp"]`; `turn:`/`turns:` ones get ephemeral credentials',
  }),
  TURN_SECRET: Type.Optional(
    Secret(
      Type.String({
        minLength: 1,
        description:
          "coturn's `static-auth-secret` (`use-auth-secret`): the key of the TURN credentials. Required when TURN_URLS has a `turn:` or `turns:` URL",
      }),
    ),
  ),
  TURN_CREDENTIAL_TTL_S: Type.Integer({
    minimum: 60,
    maximum: 30 * 86_400,
    default: 86_400,
    description: 'How long the TURN credentials of a join stay valid, seconds (60 s to 30 days)',
  }),
  CALL_QUEUE: Type.Union([Type.Literal('jetstream'), Type.Literal('memory')], {
    default: 'jetstream',
    description:
      'Where offers to hosts wait for an answerer: `jetstream` (a work queue on NATS JetStream: answerers on any gateway, offers survive a moment without one) or `memory` (this process only: development with one gateway)',
  }),
  CALL_MAX_PENDING_PER_HOST: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 256,
    description:
      'Offers one host may have waiting or ringing at once; beyond, callers get CALL_LIMIT',
  }),
  CALL_MAX_PER_CONNECTION: Type.Integer({
    minimum: 1,
    maximum: 1024,
    default: 16,
    description: 'Calls one connection may have waiting for answers at once; beyond, CALL_LIMIT',
  }),
  CALL_MAX_RINGING_PER_HOST_CONNECTION: Type.Integer({
    minimum: 1,
    maximum: 1024,
    default: 16,
    description:
      'Offers rung on one host connection at once (handed to it, not answered yet); more wait in the queue for it or another answerer of the host',
  }),
  CALL_SIGNALING_LINGER_MS: Millis(
    30_000,
    'How long after an answer trickled ICE candidates are still relayed between the two sides',
  ),
  HOST_PRESENCE_INTERVAL_MS: Millis(
    30_000,
    'How often hosts send their presence heartbeat (`ping`), told to them in hostOnlineR',
  ),
  HOST_READ_DEADLINE_GRACE_MS: Millis(
    10_000,
    'A host silent for 2 × HOST_PRESENCE_INTERVAL_MS + this is offline (its read deadline)',
  ),
  HOST_PRESENCE_RETENTION_MS: Type.Integer({
    minimum: 60_000,
    maximum: 30 * 86_400_000,
    default: 86_400_000,
    description:
      'How long an offline host stays known (its presence records in NATS KV), ms; calls to a host unknown past it get HOST_UNAVAILABLE',
  }),
  GATEWAY_DEV_TOKENS: Type.Boolean({
    default: false,
    description:
      'Development only: `POST /dev/token` signs a token for any room and name with AUTH_HS256_SECRET (the demo app uses it). Never on in production: anyone could join any room',
  }),
  DEV_TOKEN_TTL_S: Type.Integer({
    minimum: 10,
    maximum: 86_400,
    default: 600,
    description: 'Lifetime of the tokens `POST /dev/token` signs, seconds',
  }),
});
export type GatewayConfig = Static<typeof GatewayConfig>;

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
