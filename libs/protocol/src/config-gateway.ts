/** The gateway's configuration (its own file: it has the most settings). */
import Type, { type Static } from 'typebox';
import { EVENT_BATCH_MAX_ITEMS } from './client.ts';
import { Millis, Secret, common } from './config-common.ts';

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
