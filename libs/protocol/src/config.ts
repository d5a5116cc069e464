/**
 * Environment configuration of every service, as schemas. Services validate their
 * environment against these at start (and exit naming the bad variable); the README's
 * configuration table is generated from them (`./run docs`), so it cannot drift.
 */
import Type, { type Static, type TProperties } from 'typebox';
import { SubjectPrefix } from './bus.ts';

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
const Millis = (def: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 3_600_000, default: def, description });

export const LogLevel = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
);

function common(httpPort: number) {
  return {
    LOG_LEVEL: Type.Union(LogLevel.anyOf, { default: 'info', description: 'pino log level' }),
    HTTP_HOST: Type.String({
      minLength: 1,
      default: '0.0.0.0',
      description:
        'Address the HTTP server (health, readiness, metrics; the API on the gateway) binds',
    }),
    HTTP_PORT: Port(httpPort, 'Port of the HTTP server (0 picks a free port)'),
    NATS_URL: Type.String({
      minLength: 1,
      pattern: '^(nats|tls|ws|wss)://[^\\s,]+(,(nats|tls|ws|wss)://[^\\s,]+)*$',
      default: 'nats://127.0.0.1:4222',
      description: 'NATS server URL(s), comma-separated',
    }),
    NATS_SUBJECT_PREFIX: Type.String({
      ...SubjectPrefix,
      default: 'sb',
      description: 'First token(s) of every subject, so deployments can share one NATS',
    }),
    NATS_REQUEST_TIMEOUT_MS: Millis(5000, 'Default deadline of a request to another service'),
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

export const GatewayConfig = Type.Object({
  ...common(8080),
});
export type GatewayConfig = Static<typeof GatewayConfig>;

export const RoomsConfig = Type.Object({
  ...common(8081),
  DATABASE_URL: Type.String({
    pattern: '^postgres(ql)?://',
    default: 'postgresql://postgres@127.0.0.1:5432/switchboard',
    description: 'PostgreSQL connection string',
  }),
  DATABASE_POOL_MAX: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description: 'Connections in the PostgreSQL pool',
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
});
export type MediaConfig = Static<typeof MediaConfig>;

export const EventsConfig = Type.Object({
  ...common(8083),
});
export type EventsConfig = Static<typeof EventsConfig>;

export const ServiceConfigs = {
  gateway: GatewayConfig,
  rooms: RoomsConfig,
  media: MediaConfig,
  events: EventsConfig,
} as const;
