/**
 * The runtime every service shares: typed config validated at start, pino logs (secret
 * fields redacted), two HTTP servers — the main one (HTTP_PORT: `/healthz`, `/readyz`, and
 * the service's own routes, the gateway's public API) and the ops one (OPS_PORT: Prometheus
 * `/metrics`, `/healthz`, `/readyz`, and ops routes such as the gateway's status page), so
 * what operators read never sits on the public path —, and graceful shutdown on
 * SIGTERM/SIGINT (stop being ready, run the service's shutdown steps in their declared order,
 * each draining its part, close HTTP, exit).
 *
 * A service is a `setup` function that sets its parts up on the `Service` it is given;
 * `main.ts` of each service is one call to `runService`.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Static, TObject } from 'typebox';
import { Bus, type BusAuth } from '@switchboard/bus';
import {
  Ping,
  redactUrls,
  type CommonConfig,
  type ReadinessResponse,
  type ServiceName,
} from '@switchboard/protocol';
import { ConfigError, loadConfig } from './config.ts';
import { dropNatsSecrets, natsAuth } from './nats-auth.ts';
import { Readiness } from './readiness.ts';
import { shutdownOrder, type ShutdownStep } from './shutdown.ts';

/** The settings every service config has: typed by libs/protocol's schema of them. */
export type { CommonConfig } from '@switchboard/protocol';

export interface Service<C extends CommonConfig = CommonConfig> {
  readonly name: ServiceName;
  readonly instanceId: string;
  readonly version: string;
  readonly config: C;
  readonly log: Logger;
  readonly metrics: Registry;
  /** The main HTTP server (HTTP_PORT): the gateway's public API; /healthz and /readyz. */
  readonly http: FastifyInstance;
  /**
   * The ops HTTP server (OPS_PORT, kept off the public path): /metrics, /healthz, /readyz,
   * and whatever operators read (the gateway's status page).
   */
  readonly ops: FastifyInstance;
  readonly readiness: Readiness;
  /** This instance's NATS connection (readiness check `nats`; drained on shutdown). */
  readonly bus: Bus;
  /** Aborted when graceful shutdown begins. */
  readonly shutdownSignal: AbortSignal;
  /**
   * Add a shutdown step (names are unique). On SIGTERM the service stops being ready, stops
   * taking bus requests and finishes those in flight, then runs the steps one after another
   * — each after the steps it names in `after`, otherwise the last registered first — then
   * closes NATS and the HTTP servers.
   */
  onShutdown(name: string, step: () => Promise<void>, opts?: { after?: readonly string[] }): void;
}

export interface ServiceDefinition<S extends TObject> {
  name: ServiceName;
  version: string;
  config: S;
  setup(svc: Service<Static<S> & CommonConfig>): Promise<void>;
  /**
   * The level of the one line each HTTP request of the main server is logged with, once
   * answered (default `debug`: a page or a token fetched is noise in a service's log; the
   * server API's calls are its audit trail, at `info`). Probes never are.
   */
  requestLog?: 'info' | 'debug';
}

/** EX_CONFIG from sysexits.h: the configuration is wrong. */
export const EXIT_CONFIG = 78;

export async function runService<S extends TObject>(def: ServiceDefinition<S>): Promise<void> {
  let config: Static<S> & CommonConfig;
  let auth: BusAuth;
  try {
    config = loadConfig(def.config) as Static<S> & CommonConfig;
    checkCommonConfig(config);
    auth = natsAuth(config, def.name);
    dropNatsSecrets();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${def.name}: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }

  const instanceId =
    config.INSTANCE_ID ??
    `${hostname()
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .slice(0, 48)}-${randomBytes(3).toString('hex')}`;
  const log = pino({
    level: config.LOG_LEVEL,
    base: { service: def.name, instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    // A safety net: nothing logs these on purpose (see redact.ts for URLs and config errors).
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: redactedError, req: redactedRequest },
  });

  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled promise rejection; exiting');
    process.exit(1);
  });

  const metrics = new Registry();
  metrics.setDefaultLabels({ service: def.name, instance: instanceId });
  collectDefaultMetrics({ register: metrics });

  const readiness = new Readiness();
  new Gauge({
    name: 'sb_ready',
    help: '1 while the instance reports ready on /readyz',
    registers: [metrics],
    async collect() {
      this.set((await readiness.evaluate()).ready ? 1 : 0);
    },
  });

  // Fastify's instance type is generic in the logger; plugins expect the base logger type.
  const baseLog: FastifyBaseLogger = log;
  const server = (
    quiet: (url: string) => boolean,
    level = def.requestLog ?? 'debug',
  ): FastifyInstance => {
    const app: FastifyInstance = Fastify({
      loggerInstance: baseLog,
      // Fastify's two lines per request (incoming, completed) at info: one line instead, at
      // the service's level (see requestLog); a request that fails is still logged as an error.
      logController: new LogController({ disableRequestLogging: () => true }),
      return503OnClosing: true,
      trustProxy: trustProxy(config.HTTP_TRUST_PROXY),
      forceCloseConnections: 'idle',
      // Slow or idle clients do not hold sockets for ever. ws clears the socket's timeout
      // when it takes a connection over, so upgraded WebSockets are not cut by these.
      connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // A path parameter may be a whole room id (up to 128 characters, the server API's
      // /v1/rooms/{roomId}); find-my-way's default of 100 would answer a longer one 404.
      routerOptions: { maxParamLength: 256 },
    });
    app.server.headersTimeout = config.HTTP_HEADERS_TIMEOUT_MS;
    app.addHook('onResponse', (req, reply, done) => {
      if (!quiet(req.url)) {
        // `req` through the serializer, which redacts secret query parameters of its URL.
        req.log[level](
          { req, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
          'request completed',
        );
      }
      done();
    });
    return app;
  };
  // Probes and scrapes come every few seconds: never logged.
  const http = server((url) => PROBE_PATHS.has(url));
  const ops = server(() => true);
  registerProbeRoutes(http, readiness);
  registerProbeRoutes(ops, readiness);
  ops.get('/metrics', async (_req, reply) => {
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });

  const bus = new Bus({
    servers: config.NATS_URL,
    auth,
    prefix: config.NATS_SUBJECT_PREFIX,
    service: def.name,
    instanceId,
    log,
    metrics,
    requestTimeoutMs: config.NATS_REQUEST_TIMEOUT_MS,
    maxConcurrent: config.BUS_MAX_CONCURRENT,
  });
  readiness.add('nats', () => bus.connected);
  const startedAt = Date.now();
  bus.serve(Ping[def.name], async () => ({
    service: def.name,
    instanceId,
    version: def.version,
    uptimeMs: Date.now() - startedAt,
  }));

  const shutdown = new AbortController();
  const steps: ShutdownStep[] = [];
  const svc: Service<Static<S> & CommonConfig> = {
    name: def.name,
    instanceId,
    version: def.version,
    config,
    log,
    metrics,
    http,
    ops,
    readiness,
    bus,
    shutdownSignal: shutdown.signal,
    onShutdown(name, step, opts = {}) {
      if (steps.some((s) => s.name === name)) throw new Error(`shutdown step "${name}" twice`);
      steps.push({ name, step, after: opts.after ?? [] });
    },
  };

  let stopping = false;
  const stop = async (reason: string): Promise<void> => {
    if (stopping) {
      log.warn({ reason }, 'already shutting down');
      return;
    }
    stopping = true;
    const started = Date.now();
    log.info({ reason }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error(
        { timeoutMs: config.SHUTDOWN_TIMEOUT_MS },
        'graceful shutdown took too long; exiting',
      );
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    readiness.drain();
    shutdown.abort(new Error(`shutting down (${reason})`));
    let failed = false;
    try {
      await bus.stopServing();
    } catch (err) {
      failed = true;
      log.error({ err }, 'draining bus handlers failed');
    }
    const { order, problems } = shutdownOrder(steps);
    for (const problem of problems) log.error(problem);
    for (const { name, step } of order) {
      try {
        await step();
        log.debug({ step: name }, 'shutdown step done');
      } catch (err) {
        failed = true;
        log.error({ err, step: name }, 'shutdown step failed');
      }
    }
    try {
      await bus.close();
    } catch (err) {
      failed = true;
      log.error({ err }, 'closing the NATS connection failed');
    }
    for (const [what, app] of [
      ['HTTP', http],
      ['ops HTTP', ops],
    ] as const) {
      try {
        await app.close();
      } catch (err) {
        failed = true;
        log.error({ err }, `closing the ${what} server failed`);
      }
    }
    clearTimeout(deadline);
    log.info({ ms: Date.now() - started, clean: !failed }, 'stopped');
    process.exit(failed ? 1 : 0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      void stop(signal);
    });
  }

  try {
    await def.setup(svc);
    await ops.listen({ host: config.OPS_HOST, port: config.OPS_PORT });
    await http.listen({ host: config.HTTP_HOST, port: config.HTTP_PORT });
  } catch (err) {
    if (err instanceof ConfigError) {
      // A setting valid on its own but not with the others (checked by the service's setup).
      process.stderr.write(`${def.name}: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    log.fatal({ err }, 'start-up failed');
    process.exit(1);
  }
  log.info(
    {
      host: config.HTTP_HOST,
      port: portOf(http, config.HTTP_PORT),
      opsHost: config.OPS_HOST,
      opsPort: portOf(ops, config.OPS_PORT),
      version: def.version,
    },
    'listening',
  );
}

function portOf(app: FastifyInstance, configured: number): number {
  const address = app.server.address();
  return typeof address === 'object' && address !== null ? address.port : configured;
}

/** What the common settings must satisfy together (each is valid on its own). */
function checkCommonConfig(config: CommonConfig): void {
  const issues = [];
  if (config.OPS_PORT !== 0 && config.OPS_PORT === config.HTTP_PORT) {
    issues.push({ variable: 'OPS_PORT', message: 'must differ from HTTP_PORT' });
  }
  if (
    config.HTTP_REQUEST_TIMEOUT_MS > 0 &&
    config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS
  ) {
    issues.push({
      variable: 'HTTP_HEADERS_TIMEOUT_MS',
      message: 'must not be more than HTTP_REQUEST_TIMEOUT_MS',
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
}

/**
 * Fields pino censors wherever they appear (top level or one level down): tokens, passwords,
 * secrets, credentials, and the headers that carry them.
 */
const SECRET_FIELDS = [
  'token',
  'resumeToken',
  'refreshToken',
  'accessToken',
  'bearer',
  'password',
  'secret',
  'credential',
  'authorization',
  'cookie',
  // SRTP master keys of plain transports (createPlainTransport's srtp, srtpParameters)
  'keyBase64',
];
const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...['authorization', 'cookie', 'set-cookie', 'proxy-authorization', 'sec-websocket-protocol'].map(
    (h) => `req.headers["${h}"]`,
  ),
  'headers.authorization',
  'headers.cookie',
];

/** A request as fastify logs it, its URL's secret query parameters (`?token=`) redacted. */
function redactedRequest(req: unknown): unknown {
  if (typeof req !== 'object' || req === null) return req;
  const r = req as {
    method?: unknown;
    url?: unknown;
    host?: unknown;
    ip?: unknown;
    socket?: { remotePort?: unknown } | null;
  };
  return {
    method: r.method,
    url: typeof r.url === 'string' ? redactUrls(r.url) : r.url,
    host: r.host,
    remoteAddress: r.ip,
    remotePort: r.socket?.remotePort,
  };
}

/** pino's error serializer, with the credentials of URLs in messages and stacks redacted. */
function redactedError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = pino.stdSerializers.err(err) as ReturnType<typeof pino.stdSerializers.err> &
    Record<string, unknown>;
  out.message = redactUrls(out.message);
  out.stack = redactUrls(out.stack);
  return out;
}

/** HTTP_TRUST_PROXY as fastify's trustProxy option. */
function trustProxy(value: string): boolean | string[] | ((addr: string, hop: number) => boolean) {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    return (_addr, hop) => hop < hops;
  }
  return value.split(',');
}

const PROBE_PATHS = new Set(['/healthz', '/readyz']);

/** /healthz and /readyz: on the main port (probes, load balancers) and on the ops port. */
function registerProbeRoutes(http: FastifyInstance, readiness: Readiness): void {
  http.get('/healthz', async () => ({ status: 'ok' }));
  http.get('/readyz', async (_req, reply) => {
    const report = await readiness.evaluate();
    const body: ReadinessResponse = {
      status: report.ready ? 'ready' : report.draining ? 'draining' : 'not ready',
      checks: report.checks,
    };
    return reply.code(report.ready ? 200 : 503).send(body);
  });
}
