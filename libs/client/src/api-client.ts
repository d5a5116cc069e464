/**
 * A client of the server API for a team's backend (Node): one typed method per operation of
 * the protocol's ApiRoutes — `createRoom`, `listRooms`, `removeParticipant`, `callRoom`, … —
 * each taking the operation's path parameters, query and body as one object and resolving
 * with its reply, validated against the route's schema (undefined for a 204).
 *
 * Every request carries a token minted with the API key (mintApiToken), reused until shortly
 * before it expires. Every request has a deadline (`timeoutMs`) and may be cancelled (`signal`).
 * A refusal is thrown as an ApiError: a ProtocolError (the API's error code and message) that
 * also carries the HTTP status.
 *
 *   const api = new ApiClient({ url: 'http://switchboard-api', keyId, secret });
 *   await api.createRoom({ roomId: 'standup', capacity: 10 });
 *   const { participants } = await api.listParticipants({ roomId: 'standup' });
 *   await api.removeParticipant({ roomId: 'standup', socketId, reason: 'bye' });
 */
import {
  API_OPERATIONS,
  ApiErrorBody,
  ApiRoutes,
  DEFAULT_CALL_TIMEOUT_MS,
  ProtocolError,
  errorName,
  formatIssues,
  validator,
  type AdminGrants,
  type ApiInput,
  type ApiOperation,
  type ApiReply,
  type ApiRoute,
  type ErrorName,
  type Validator,
} from '@switchboard/protocol';
import type { TObject, TSchema } from 'typebox';
import { DEFAULT_API_TOKEN_TTL_S, mintApiToken } from './server-tokens.ts';

/** The default deadline of one request. */
export const DEFAULT_API_TIMEOUT_MS = 10_000;

export interface ApiClientOptions {
  /** The API's base URL, e.g. `http://switchboard-api.default.svc` (no trailing /v1). */
  url: string;
  /** The API key's id and secret. */
  keyId: string;
  secret: string;
  /** What the client's tokens allow (default: every grant, on every room). */
  grants?: AdminGrants;
  /** Who is calling (the tokens' `sub`, in the API's logs). */
  sub?: string;
  /** The tokens' life, seconds (default 60). */
  tokenTtlS?: number;
  /** Each request's deadline unless it names one (default 10 s). */
  timeoutMs?: number;
}

export interface ApiCallOptions {
  /** Cancels the request: it rejects with CANCELLED. */
  signal?: AbortSignal;
  /** This request's deadline (default: the client's); TIMEOUT past it. */
  timeoutMs?: number;
  /** Sent as `x-request-id` (the API's logs carry it); default: the API makes one. */
  requestId?: string;
}

/** A request the API refused (or could not be made): its code, message and HTTP status. */
export class ApiError extends ProtocolError {
  /** The HTTP status; 0 when no response came (unreachable, deadline, cancelled). */
  readonly status: number;
  /** The request's `x-request-id`, when the API answered (quote it to find the logs). */
  readonly requestId: string | undefined;

  constructor(
    name: ErrorName,
    message: string,
    status: number,
    requestId?: string,
    options?: ErrorOptions,
  ) {
    super(name, undefined, options);
    this.name = 'ApiError';
    this.message = message;
    this.status = status;
    this.requestId = requestId;
  }
}

/** One method per operation: `(input, opts?) => reply`. */
export type ApiClientMethods = {
  [O in ApiOperation]: (input: ApiInput<O>, opts?: ApiCallOptions) => Promise<ApiReply<O>>;
};

const apiErrorBody = validator(ApiErrorBody);
const EVERYTHING: AdminGrants = { roomList: true, roomCreate: true, roomAdmin: true, rooms: ['*'] };

interface Parts {
  params: string[];
  query: string[];
  body: string[];
  reply: Validator<TSchema> | undefined;
}

const names = (s: TSchema | undefined): string[] =>
  Object.keys((s as TObject | undefined)?.properties ?? {});

const PARTS = Object.fromEntries(
  API_OPERATIONS.map((op) => {
    const r: ApiRoute = ApiRoutes[op];
    return [
      op,
      {
        params: names(r.params),
        query: names(r.query),
        body: names(r.body),
        reply: r.reply === undefined ? undefined : validator(r.reply),
      },
    ];
  }),
) as Record<ApiOperation, Parts>;

class Client {
  readonly #url: string;
  readonly #opts: ApiClientOptions;
  #token: { value: string; renewAt: number } | undefined;

  constructor(opts: ApiClientOptions) {
    this.#url = opts.url.replace(/\/+$/, '');
    this.#opts = opts;
    for (const op of API_OPERATIONS) {
      Object.defineProperty(this, op, {
        value: (input: unknown, o?: ApiCallOptions): Promise<unknown> =>
          this.request(op, input as never, o),
        enumerable: false,
      });
    }
  }

  /**
   * A client of the same API and key whose tokens carry other grants: least privilege for a
   * part of a backend, or listRooms narrowed to some rooms (it lists what `rooms` covers).
   */
  withGrants(grants: AdminGrants): ApiClient {
    return new ApiClient({ ...this.#opts, grants });
  }

  /** A token for the next request: the cached one, or a new one near its expiry. */
  #bearer(): string {
    const now = Date.now();
    if (this.#token !== undefined && now < this.#token.renewAt) return this.#token.value;
    const ttlS = this.#opts.tokenTtlS ?? DEFAULT_API_TOKEN_TTL_S;
    const value = mintApiToken({
      keyId: this.#opts.keyId,
      secret: this.#opts.secret,
      grants: this.#opts.grants ?? EVERYTHING,
      ttlS,
      ...(this.#opts.sub === undefined ? {} : { sub: this.#opts.sub }),
    });
    // Renewed with a quarter of its life left, and at least 5 s before it expires.
    this.#token = { value, renewAt: now + Math.max(0, ttlS * 1000 - Math.max(ttlS * 250, 5000)) };
    return value;
  }

  /** Call operation `op` (what each typed method does). */
  async request<O extends ApiOperation>(
    op: O,
    input: ApiInput<O>,
    opts: ApiCallOptions = {},
  ): Promise<ApiReply<O>> {
    const route: ApiRoute = ApiRoutes[op];
    const parts = PARTS[op];
    const values = input as Record<string, unknown>;
    for (const key of Object.keys(values)) {
      if (values[key] === undefined) continue;
      if (![...parts.params, ...parts.query, ...parts.body].includes(key)) {
        throw new TypeError(`${op}: unknown field ${key}`);
      }
    }
    let path = route.path;
    for (const p of parts.params) {
      const v = values[p];
      if (typeof v !== 'string') throw new TypeError(`${op}: ${p} is required`);
      path = path.replace(`{${p}}`, encodeURIComponent(v));
    }
    const query = new URLSearchParams();
    for (const q of parts.query) {
      const v = values[q];
      if (typeof v === 'string' || typeof v === 'number') query.set(q, String(v));
    }
    const body =
      route.body === undefined
        ? undefined
        : JSON.stringify(
            Object.fromEntries(
              parts.body.filter((k) => values[k] !== undefined).map((k) => [k, values[k]]),
            ),
          );
    // A call waits for the clients' answers: its deadline is theirs and some.
    const callTimeout =
      op === 'callRoom' || op === 'callParticipant'
        ? ((values['timeoutMs'] as number | undefined) ?? DEFAULT_CALL_TIMEOUT_MS) + 5000
        : 0;
    const timeoutMs =
      opts.timeoutMs ?? Math.max(this.#opts.timeoutMs ?? DEFAULT_API_TIMEOUT_MS, callTimeout);
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal === undefined ? deadline : AbortSignal.any([opts.signal, deadline]);
    const url = `${this.#url}${path}${query.size > 0 ? `?${query.toString()}` : ''}`;

    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: route.method,
        headers: {
          authorization: `Bearer ${this.#bearer()}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(opts.requestId === undefined ? {} : { 'x-request-id': opts.requestId }),
        },
        ...(body === undefined ? {} : { body }),
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (opts.signal?.aborted === true) {
        throw new ApiError('CANCELLED', `${op}: cancelled`, 0, undefined, { cause: err });
      }
      if (deadline.aborted) {
        throw new ApiError(
          'TIMEOUT',
          `${op}: no answer within ${String(timeoutMs)} ms`,
          0,
          undefined,
          {
            cause: err,
          },
        );
      }
      throw new ApiError(
        'SERVICE_UNAVAILABLE',
        `${op}: ${route.method} ${url} failed: ${err instanceof Error ? err.message : String(err)}`,
        0,
        undefined,
        { cause: err },
      );
    }
    const requestId = res.headers.get('x-request-id') ?? undefined;
    if (!res.ok) throw errorOf(op, res.status, text, requestId);
    if (res.status === 204 || parts.reply === undefined) return undefined as ApiReply<O>;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiError('SYSTEM', `${op}: the reply is not JSON`, res.status, requestId);
    }
    const parsed = parts.reply.parse(json);
    if (!parsed.ok) {
      throw new ApiError(
        'SYSTEM',
        `${op}: invalid reply: ${formatIssues(parsed.issues)}`,
        res.status,
        requestId,
      );
    }
    return parsed.value as ApiReply<O>;
  }
}

/** The ApiError of an error reply (an ApiErrorBody, or whatever a proxy on the way sent). */
function errorOf(
  op: string,
  status: number,
  text: string,
  requestId: string | undefined,
): ApiError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const body = apiErrorBody.parse(json);
  if (body.ok) {
    const { code, message } = body.value.error;
    return new ApiError(errorName(code) ?? 'SYSTEM', message, status, requestId);
  }
  const name: ErrorName =
    status === 401
      ? 'AUTH_FAILED'
      : status === 403
        ? 'PERMISSION_DENIED'
        : status === 429
          ? 'RATE_LIMITED'
          : status === 502 || status === 503
            ? 'SERVICE_UNAVAILABLE'
            : status === 504
              ? 'TIMEOUT'
              : 'SYSTEM';
  return new ApiError(name, `${op}: HTTP ${String(status)}`, status, requestId);
}

/** A server API client: `new ApiClient({ url, keyId, secret })`, then one method per operation. */
export type ApiClient = Client & ApiClientMethods;
export const ApiClient = Client as unknown as new (opts: ApiClientOptions) => ApiClient;
