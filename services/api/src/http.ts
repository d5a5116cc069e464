/**
 * The server API over HTTP, routed from the protocol's table (libs/protocol api.ts
 * `ApiRoutes`): one generic registration for every endpoint. Each request is, in order:
 *
 *   1. given a request id (its `x-request-id` when well formed, else a new one), echoed in
 *      the reply and bound to every log line of the request; `cache-control: no-store`;
 *   2. authenticated (auth.ts) and checked against the route's grant — any one of its grants
 *      must be true in the token's `admin` claim — before its body is read: 401, 403;
 *   3. validated: path parameters, the query (`limit` and other integers converted from their
 *      strings), the JSON body (`application/json`, at most API_BODY_LIMIT_BYTES) against the
 *      route's schemas, which admit no unknown field: 400 (JSON, JSON_FIELD_MISSING,
 *      JSON_FIELD_INVALID), 413, 415;
 *   4. checked against the token's rooms: the room the request names (its path's `roomId`, or
 *      createRoom's body) must be covered by `admin.rooms`: 403;
 *   5. handed to its operation (operations.ts), which maps it onto a bus request.
 *
 * Every error reply is an ApiErrorBody, its status from API_HTTP_STATUS (a ProtocolError from
 * the bus keeps its code); anything unexpected is logged and answered 500 SYSTEM. A path the
 * table does not have is 404, a method it does not have on a path it has 405 (with `allow`).
 */
import { randomUUID } from 'node:crypto';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RouteOptions,
} from 'fastify';
import type { TObject, TSchema } from 'typebox';
import {
  API_HTTP_STATUS,
  API_OPERATIONS,
  ApiRoutes,
  ProtocolError,
  invalidPayload,
  isProtocolError,
  roomGranted,
  validator,
  type AdminGrant,
  type ApiBody,
  type ApiErrorBody,
  type ApiOperation,
  type ApiParams,
  type ApiQuery,
  type ApiReply,
  type ApiRoute,
  type Issue,
  type Validator,
} from '@switchboard/protocol';
import { Counter, Histogram, requestSignal, type Registry } from '@switchboard/service';
import { AUTH_FAILURE_REASONS, AuthFailure, type ApiAuth, type Caller } from './auth.ts';

/** What an operation is given besides its input. */
export interface OperationContext {
  readonly caller: Caller;
  /** Fires when the HTTP client goes away or the service shuts down. */
  readonly signal: AbortSignal;
  /** The request's `traceparent` header (bus requests continue its trace). */
  readonly traceparent: string | undefined;
  readonly log: FastifyBaseLogger;
  /** Answer with this status instead of the route's (createRoom: 200 for an existing room). */
  status(code: 200 | 201): void;
}

export interface OperationInput<O extends ApiOperation> {
  params: ApiParams<O>;
  query: ApiQuery<O>;
  body: ApiBody<O>;
}

/** One handler per operation: the validated input in, the reply out (undefined for 204). */
export type Operations = {
  [O in ApiOperation]: (input: OperationInput<O>, ctx: OperationContext) => Promise<ApiReply<O>>;
};

export interface ApiHttpOptions {
  auth: ApiAuth;
  operations: Operations;
  /** API_BODY_LIMIT_BYTES. */
  bodyLimit: number;
  metrics: Registry;
  /** Aborted when the service begins to shut down: new requests then get 503 SHUTTING_DOWN. */
  shutdownSignal: AbortSignal;
}

/** Requests in progress, for the graceful shutdown to wait for. */
export interface ApiHttp {
  /** Every route registered, `METHOD /path` as fastify has it (`:param`). */
  readonly routes: readonly string[];
  /**
   * Let the requests in progress finish, for `graceMs` at most; then abort what is left (they
   * are answered 503 SHUTTING_DOWN) and resolve once every request has been answered.
   */
  drain(graceMs: number): Promise<void>;
}

/** A request id from the caller is kept when it looks like one; anything else is replaced. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** `/v1/rooms/{roomId}` → `/v1/rooms/:roomId` (fastify's syntax). */
export function fastifyPath(path: string): string {
  return path.replace(/\{([A-Za-z]+)\}/g, ':$1');
}

/** A route's path as a regular expression (for 405: which methods a path has). */
function pathPattern(path: string): RegExp {
  const escaped = path
    .split(/\{[A-Za-z]+\}/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('[^/]+')}/?$`);
}

/** A JSON error whose message is `detail` alone (the code's own speaks of frames). */
function jsonError(detail: string): ProtocolError {
  const err = new ProtocolError('JSON');
  err.message = detail;
  return err;
}

function errorBody(err: ProtocolError): ApiErrorBody {
  return { error: { code: err.code, name: err.errorName, message: err.message } };
}

/** The issues of one part of the request, their paths under the part's name. */
function under(part: 'path' | 'query' | 'body', issues: readonly Issue[]): Issue[] {
  return issues.map((i) => ({ ...i, path: `${part}${i.path}` }));
}

/** The query as fastify parsed it (strings), integers converted where the schema wants one. */
function coerceQuery(schema: TSchema | undefined, raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return {};
  const props = (schema as TObject | undefined)?.properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const prop = props[key] as unknown as Record<string, unknown> | undefined;
    const type = prop?.['type'];
    out[key] =
      (type === 'integer' || type === 'number') &&
      typeof value === 'string' &&
      /^-?\d{1,15}$/.test(value)
        ? Number(value)
        : value;
  }
  return out;
}

interface Compiled {
  op: ApiOperation;
  route: ApiRoute;
  grants: readonly AdminGrant[];
  params: Validator<TSchema>;
  query: Validator<TSchema> | undefined;
  body: Validator<TSchema> | undefined;
}

function compile(op: ApiOperation): Compiled {
  const route: ApiRoute = ApiRoutes[op];
  return {
    op,
    route,
    grants: typeof route.grant === 'string' ? [route.grant] : route.grant,
    params: validator(route.params),
    query: route.query === undefined ? undefined : validator(route.query),
    body: route.body === undefined ? undefined : validator(route.body),
  };
}

function parseOrThrow(
  v: Validator<TSchema>,
  value: unknown,
  part: 'path' | 'query' | 'body',
): unknown {
  const parsed = v.parse(value);
  if (!parsed.ok) throw invalidPayload(under(part, parsed.issues));
  return parsed.value;
}

/**
 * Register every route of ApiRoutes on `app` (in a plugin of their own: their JSON parser,
 * hooks, error and not-found handlers apply to them alone).
 */
export async function registerApi(app: FastifyInstance, opts: ApiHttpOptions): Promise<ApiHttp> {
  const requests = new Counter({
    name: 'sb_api_requests_total',
    help: 'Server API requests answered, by operation (`unknown`: no such endpoint) and HTTP status',
    labelNames: ['operation', 'status'],
    registers: [opts.metrics],
  });
  const duration = new Histogram({
    name: 'sb_api_request_duration_seconds',
    help: 'Time to answer a server API request, by operation',
    labelNames: ['operation'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [opts.metrics],
  });
  const authFailures = new Counter({
    name: 'sb_api_auth_failures_total',
    help: 'Server API requests refused 401, by reason',
    labelNames: ['reason'],
    registers: [opts.metrics],
  });
  for (const reason of AUTH_FAILURE_REASONS) authFailures.inc({ reason }, 0);

  const callers = new WeakMap<FastifyRequest, Caller>();
  const operationOf = new WeakMap<FastifyRequest, ApiOperation>();
  const inflight = new Set<Promise<void>>();
  let idleWaiters: (() => void)[] = [];
  // Aborted when a shutdown's grace period is over: what is still in progress stops.
  const cutOff = new AbortController();
  const idle = async (): Promise<void> => {
    if (inflight.size === 0) return;
    await new Promise<void>((resolve) => {
      idleWaiters.push(resolve);
    });
  };
  const routes: string[] = [];
  const byPath = API_OPERATIONS.map((op) => ({
    pattern: pathPattern(ApiRoutes[op].path),
    method: ApiRoutes[op].method,
  }));

  const sendError = (
    req: FastifyRequest,
    reply: FastifyReply,
    err: ProtocolError,
    status: number = API_HTTP_STATUS[err.errorName],
  ): FastifyReply => {
    if (status === 500) {
      req.log.error({ err }, 'server API request failed');
    } else if (status > 500) {
      // The platform behind is unavailable or slow: its own logs say why.
      req.log.warn({ code: err.errorName, detail: err.message }, 'server API request failed');
    }
    return reply.code(status).type('application/json').send(errorBody(err));
  };

  await app.register(async (api) => {
    api.removeAllContentTypeParsers();
    api.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: opts.bodyLimit },
      (_req, text, done) => {
        const s = typeof text === 'string' ? text : text.toString('utf8');
        if (s.trim() === '') {
          done(jsonError('the body is empty'), undefined);
          return;
        }
        try {
          done(null, JSON.parse(s));
        } catch {
          done(jsonError('the body is not valid JSON'), undefined);
        }
      },
    );

    api.addHook('onRequest', async (req, reply) => {
      const given = req.headers['x-request-id'];
      const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      req.log = req.log.child({ requestId });
      reply.log = req.log;
      void reply.header('x-request-id', requestId).header('cache-control', 'no-store');
      let done!: () => void;
      const p = new Promise<void>((resolve) => {
        done = resolve;
      });
      inflight.add(p);
      reply.raw.once('close', () => {
        inflight.delete(p);
        done();
        if (inflight.size === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    });

    api.addHook('onResponse', async (req, reply) => {
      const operation = operationOf.get(req) ?? 'unknown';
      requests.inc({ operation, status: String(reply.statusCode) });
      duration.observe({ operation }, reply.elapsedTime / 1000);
    });

    api.setErrorHandler((err: unknown, req, reply) => {
      if (err instanceof AuthFailure) {
        authFailures.inc({ reason: err.reason });
        req.log.info({ reason: err.reason }, 'server API request not authenticated');
        void reply.header(
          'www-authenticate',
          err.reason === 'missing'
            ? 'Bearer realm="switchboard"'
            : 'Bearer realm="switchboard", error="invalid_token"',
        );
        return sendError(req, reply, new ProtocolError('AUTH_FAILED', err.message));
      }
      if (isProtocolError(err)) {
        // Cut off by the shutdown (its grace period over): say so, not CANCELLED.
        if (err.errorName === 'CANCELLED' && cutOff.signal.aborted) {
          return sendError(req, reply, new ProtocolError('SHUTTING_DOWN'));
        }
        return sendError(req, reply, err);
      }
      const fe = err as { code?: unknown; statusCode?: unknown };
      switch (fe.code) {
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          return sendError(
            req,
            reply,
            jsonError(`the body is larger than ${String(opts.bodyLimit)} bytes`),
            413,
          );
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          return sendError(req, reply, jsonError('the body must be application/json'), 415);
        default:
          break;
      }
      if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
        // fastify's own refusals of a malformed request (a bad content-length, …).
        const message = err instanceof Error ? err.message : 'bad request';
        return sendError(req, reply, jsonError(message), fe.statusCode);
      }
      req.log.error({ err }, 'server API request failed unexpectedly');
      return sendError(req, reply, new ProtocolError('SYSTEM'));
    });

    api.setNotFoundHandler(async (req, reply) => {
      const path = req.url.split('?')[0] ?? '';
      const allowed = [...new Set(byPath.filter((r) => r.pattern.test(path)).map((r) => r.method))];
      if (allowed.length > 0) {
        void reply.header('allow', allowed.join(', '));
        return sendError(
          req,
          reply,
          new ProtocolError('UNKNOWN_ACTION', `${req.method} is not allowed here`),
          405,
        );
      }
      return sendError(req, reply, new ProtocolError('UNKNOWN_ACTION', `no endpoint ${path}`));
    });

    api.addHook('onRoute', (r) => {
      const methods = Array.isArray(r.method) ? r.method : [r.method];
      for (const m of methods) routes.push(`${m} ${r.url}`);
    });

    for (const op of API_OPERATIONS) {
      const c = compile(op);
      const options: RouteOptions = {
        method: c.route.method,
        url: fastifyPath(c.route.path),
        exposeHeadRoute: false,
        bodyLimit: opts.bodyLimit,
        onRequest: async (req) => {
          operationOf.set(req, op);
          if (opts.shutdownSignal.aborted) throw new ProtocolError('SHUTTING_DOWN');
          const caller = await opts.auth.authenticate(req.headers.authorization);
          req.log = req.log.child({ operation: op, keyId: caller.keyId, sub: caller.sub });
          callers.set(req, caller);
          const admin = caller.claims.admin;
          if (!c.grants.some((g) => admin[g] === true)) {
            throw new ProtocolError(
              'PERMISSION_DENIED',
              `${op} needs the grant ${c.grants.join(' or ')}`,
            );
          }
        },
        handler: async (req, reply) => {
          reply.log = req.log;
          const caller = callers.get(req);
          if (caller === undefined) throw new Error('no caller: the onRequest hook did not run');
          const params = parseOrThrow(c.params, req.params, 'path');
          const query =
            c.query === undefined
              ? {}
              : parseOrThrow(c.query, coerceQuery(c.route.query, req.query), 'query');
          if (c.query === undefined && Object.keys(req.query as object).length > 0) {
            throw new ProtocolError('JSON_FIELD_INVALID', `${op} takes no query`);
          }
          let body: unknown = {};
          if (c.body !== undefined) {
            if (req.body === undefined) {
              throw new ProtocolError(
                'JSON_FIELD_MISSING',
                `${op} takes a JSON body (content-type application/json)`,
              );
            }
            body = parseOrThrow(c.body, req.body, 'body');
          } else if (req.body !== undefined) {
            throw new ProtocolError('JSON_FIELD_INVALID', `${op} takes no body`);
          }
          const roomId =
            (params as { roomId?: string }).roomId ?? (body as { roomId?: string }).roomId;
          if (roomId !== undefined && !roomGranted(caller.claims.admin.rooms ?? [], roomId)) {
            throw new ProtocolError('PERMISSION_DENIED', `the token does not cover room ${roomId}`);
          }
          let status: number = c.route.status;
          // The client going away stops the work; a shutdown lets it finish (drain).
          const signal = AbortSignal.any([requestSignal(reply), cutOff.signal]);
          const traceparent = req.headers.traceparent;
          const handler = opts.operations[op] as (
            input: OperationInput<ApiOperation>,
            ctx: OperationContext,
          ) => Promise<unknown>;
          const result = await handler({ params, query, body } as OperationInput<ApiOperation>, {
            caller,
            signal,
            traceparent: typeof traceparent === 'string' ? traceparent : undefined,
            log: req.log,
            status: (code) => {
              status = code;
            },
          });
          if (status === 204) return reply.code(204).send();
          return reply.code(status).type('application/json').send(result);
        },
      };
      api.route(options);
    }
  });

  return {
    routes,
    drain: async (graceMs) => {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      try {
        await Promise.race([idle(), graceOver]);
      } finally {
        clearTimeout(timer);
      }
      cutOff.abort(new ProtocolError('SHUTTING_DOWN'));
      await idle();
    },
  };
}
