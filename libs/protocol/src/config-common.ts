/**
 * The settings every service has, and the pieces the services' own schemas are made of
 * (config.ts, config-gateway.ts). Its helpers (Port, Secret…) are not exported from the
 * package: config.ts re-exports what is public, by name.
 *
 * Secrets: a variable whose value must never be printed carries `secret: true` in its schema
 * (`Secret(...)` below). The config loader then never echoes its value in an error — nor the
 * value of any variable whose name looks secret (redact.ts `isSecretName`) — and the
 * credentials of URLs in any other value are redacted.
 */
import Type, { type Static, type TProperties, type TSchema } from 'typebox';
import { SubjectPrefix } from './bus.ts';
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
export function Secret<T extends TSchema>(schema: T): T {
  return Object.assign(schema, { secret: true });
}

/** Whether a variable's value must never be printed: marked `secret`, or named like one. */
export function isSecretVariable(name: string, schema?: TSchema): boolean {
  const marked: { secret?: unknown } = schema ?? {};
  return marked.secret === true || isSecretName(name);
}

export const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
export const Millis = (def: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 3_600_000, default: def, description });

export const LogLevel = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
);

export const Path = (description: string) =>
  Type.Optional(Type.String({ minLength: 1, description }));
export const SecretText = (description: string) =>
  Secret(Type.Optional(Type.String({ minLength: 1, writeOnly: true, description })));

/**
 * This process's identity on NATS (libs/protocol/src/permissions.ts says what each may do):
 * one of a user and password, an NKey seed, or a `.creds` file; and TLS. Every secret can
 * come from a file (`*_FILE`, e.g. a mounted Kubernetes Secret) instead of the environment.
 */
export function natsAuth() {
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

export function common(httpPort: number) {
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
