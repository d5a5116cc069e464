/**
 * Generates docs/openapi.json, an OpenAPI 3.1 description of the server API, from the one
 * table of its endpoints (libs/protocol/src/api.ts `ApiRoutes`): each operation (its id the
 * table's key), its path parameters, query, JSON body, success reply and every error reply
 * (ApiErrorBody), the bearer security scheme. TypeBox schemas are JSON Schema 2020-12, which
 * OpenAPI 3.1 takes as they are; the ones several operations share (Room, Participant, Track,
 * CallResult, ApiErrorBody) are put under components.schemas and referenced. `./run docs`
 * writes the file; a test fails when the committed one differs from what it would write.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import type { TSchema } from 'typebox';
import {
  API_OPERATIONS,
  AdminClaims,
  AdminGrants,
  ApiConfig,
  ApiErrorBody,
  ApiRoutes,
  CallResult,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_PAGE_LIMIT,
  ErrorCodes,
  Participant,
  Room,
  Track,
  type ApiOperation,
  type ApiRoute,
  type ErrorName,
} from '@switchboard/protocol';

export const OPENAPI = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../package.json', import.meta.url));

/** Schemas shared by several operations, by their component name. */
export const SHARED_SCHEMAS: Record<string, TSchema> = {
  Room,
  Participant,
  Track,
  CallResult,
  ApiErrorBody,
  AdminGrants,
  AdminClaims,
};

/** Words for the parameters the table names. */
const PARAMETER_DESCRIPTIONS: Record<string, string> = {
  roomId: 'The room id.',
  socketId: "A member's socketId (its session in the room).",
  trackId: 'The track: the id of the member’s producer.',
  after: 'The page after this id: the `next` of the previous page (absent: the first page).',
  limit: `Most items in the page (default ${String(DEFAULT_PAGE_LIMIT)}).`,
  reason: 'Told to the member: its socket’s close reason.',
};

/** What each operation is grouped under. */
function tagOf(route: ApiRoute): string {
  if (route.path.endsWith('/calls')) return 'calls';
  if (route.path.includes('/participants')) return 'participants';
  return 'rooms';
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

/** `schema` with every subtree equal to a shared schema replaced by its $ref. */
function withRefs(schema: unknown, except?: string): unknown {
  const key = JSON.stringify(schema);
  for (const [name, shared] of Object.entries(SHARED_SCHEMAS)) {
    if (name !== except && key === JSON.stringify(plain(shared))) {
      return { $ref: `#/components/schemas/${name}` };
    }
  }
  if (Array.isArray(schema)) return schema.map((s) => withRefs(s));
  if (typeof schema === 'object' && schema !== null) {
    return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, withRefs(v)]));
  }
  return schema;
}

/** The error replies, by HTTP status: what each means, and the codes it carries. */
const ERROR_RESPONSES: Record<string, { status: number; description: string; codes: ErrorName[] }> =
  {
    BadRequest: {
      status: 400,
      description:
        'The request is not one the operation takes: a path parameter, the query or the body fails its schema (an unknown field included; the message names each field), or the body is not JSON.',
      codes: ['JSON', 'JSON_FIELD_MISSING', 'JSON_FIELD_INVALID'],
    },
    Unauthorized: {
      status: 401,
      description:
        'No token, or one refused: not HS256, an unknown key (`iss`), a bad signature, expired, not yet valid (`nbf`), living longer than API_TOKEN_MAX_TTL_S, or claims that are not AdminClaims. With `www-authenticate: Bearer`.',
      codes: ['AUTH_FAILED'],
    },
    Forbidden: {
      status: 403,
      description:
        "The token's grants do not allow the operation, or its `admin.rooms` do not cover the room the request names.",
      codes: ['PERMISSION_DENIED'],
    },
    NotFound: {
      status: 404,
      description:
        'No such room (ROOM_NOT_FOUND), member of the room (SOCKET_ID_DOES_NOT_EXIST) or track of the member (MEDIA_NOT_FOUND).',
      codes: ['ROOM_NOT_FOUND', 'SOCKET_ID_DOES_NOT_EXIST', 'MEDIA_NOT_FOUND'],
    },
    PayloadTooLarge: {
      status: 413,
      description: 'The body is larger than API_BODY_LIMIT_BYTES.',
      codes: ['JSON'],
    },
    UnsupportedMediaType: {
      status: 415,
      description: 'The body is not `application/json`.',
      codes: ['JSON'],
    },
    InternalError: {
      status: 500,
      description: 'Something failed unexpectedly (it is logged, with the request id).',
      codes: ['SYSTEM'],
    },
    Unavailable: {
      status: 503,
      description:
        'The rooms service (or NATS) is unavailable, or this API instance is shutting down: retry.',
      codes: ['SERVICE_UNAVAILABLE', 'SHUTTING_DOWN'],
    },
    Timeout: {
      status: 504,
      description: 'The rooms service did not answer within NATS_REQUEST_TIMEOUT_MS: retry.',
      codes: ['TIMEOUT'],
    },
  };

/** The error replies an operation may give. */
export function errorResponsesOf(op: ApiOperation): string[] {
  const route: ApiRoute = ApiRoutes[op];
  const names = ['BadRequest', 'Unauthorized', 'Forbidden'];
  if (route.path.includes('{roomId}')) names.push('NotFound');
  if (route.body !== undefined) names.push('PayloadTooLarge', 'UnsupportedMediaType');
  names.push('InternalError', 'Unavailable', 'Timeout');
  return names;
}

const requestIdHeader = { $ref: '#/components/headers/RequestId' };

function version(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: string };
  return pkg.version ?? '1.0.0';
}

function description(): string {
  const ttl = (ApiConfig.properties.API_TOKEN_MAX_TTL_S as { default?: number }).default;
  return [
    'The server API of Switchboard: what a team’s backend calls to run its rooms — create, list, change and delete them; list, change and remove their members; mute tracks; send data; call the handlers clients registered. Served by the `api` service on its own port (HTTP_PORT, default 8084), never on the gateway’s public one.',
    '',
    `**Authentication.** Every request carries \`Authorization: Bearer <token>\`: a JWT signed with HS256 — no other algorithm is accepted — with the secret of one of the platform’s API keys (API_KEYS), whose id is the token’s \`iss\`. \`exp\` is required and \`nbf\` honoured; a token may live at most API_TOKEN_MAX_TTL_S (default ${String(ttl)} s). What it allows is its \`admin\` claim (AdminGrants): \`roomList\`, \`roomCreate\`, \`roomAdmin\`, and the \`rooms\` they cover (ids, or \`prefix*\`). Each operation names the grant(s) it needs (any one of them) and checks the room the request names against \`rooms\`.`,
    '',
    '**Errors.** Every error reply is an ApiErrorBody (`{"error": {"code", "name", "message"}}`, codes of the protocol’s error table); its HTTP status follows from the code. Unknown paths get 404, a method a path does not have 405 (with `allow`).',
    '',
    '**Every reply** carries `cache-control: no-store` and `x-request-id` (the request’s own when it sent a well-formed one; quote it to find the logs).',
    '',
    `**Calls to clients** (callParticipant, callRoom) wait for each client’s answer for \`timeoutMs\` (default ${String(DEFAULT_CALL_TIMEOUT_MS)} ms); each answer is a CallResult: the client’s reply, or its error (TIMEOUT when it did not answer).`,
  ].join('\n');
}

function errorCodesText(codes: readonly ErrorName[]): string {
  return codes.map((c) => `\`${c}\` (0x${ErrorCodes[c].code.toString(16)})`).join(', ');
}

/** The OpenAPI document (a plain JSON value). */
export function openapiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of API_OPERATIONS) {
    const route: ApiRoute = ApiRoutes[op];
    const grants = typeof route.grant === 'string' ? [route.grant] : route.grant;
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['path', route.params],
      ['query', route.query],
    ] as const) {
      if (schema === undefined) continue;
      const s = plain(schema) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, prop] of Object.entries(s.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (s.required ?? []).includes(name),
          description: PARAMETER_DESCRIPTIONS[name] ?? name,
          schema: withRefs(prop),
        });
      }
    }
    const responses: Record<string, unknown> = {};
    const success = route.reply === undefined ? undefined : withRefs(plain(route.reply));
    const ok = (what: string): unknown => ({
      description: what,
      headers: { 'x-request-id': requestIdHeader },
      ...(success === undefined ? {} : { content: { 'application/json': { schema: success } } }),
    });
    if (op === 'createRoom') {
      responses['201'] = ok('The room, created (`created`: true).');
      responses['200'] = ok('The room existed: returned unchanged (`created`: false).');
    } else {
      responses[String(route.status)] = ok(route.status === 204 ? 'Done.' : 'The reply.');
    }
    for (const name of errorResponsesOf(op)) {
      const status = ERROR_RESPONSES[name]?.status;
      if (status !== undefined)
        responses[String(status)] = { $ref: `#/components/responses/${name}` };
    }
    const operation = {
      operationId: op,
      tags: [tagOf(route)],
      summary: route.summary,
      description: [
        ...(route.description === undefined ? [] : [route.description, '']),
        `Needs the grant ${grants.map((g) => `\`${g}\``).join(' or ')}${route.path.includes('{roomId}') || op === 'createRoom' ? ', on the room (`admin.rooms` covers it)' : ''}.`,
      ].join('\n'),
      ...(parameters.length === 0 ? {} : { parameters }),
      ...(route.body === undefined
        ? {}
        : {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: withRefs(plain(route.body)) } },
            },
          }),
      responses,
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  const responses = Object.fromEntries(
    Object.entries(ERROR_RESPONSES).map(([name, r]) => [
      name,
      {
        description: `${r.description} Codes: ${errorCodesText(r.codes)}.`,
        headers: { 'x-request-id': requestIdHeader },
        content: {
          'application/json': { schema: { $ref: '#/components/schemas/ApiErrorBody' } },
        },
      },
    ]),
  );
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Switchboard server API',
      version: version(),
      description: description(),
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [
      {
        url: 'http://localhost:8084',
        description:
          'A placeholder: the api service of your deployment (HTTP_PORT; in Kubernetes the `<release>-switchboard-api` Service).',
      },
    ],
    security: [{ apiToken: [] }],
    tags: [
      { name: 'rooms', description: 'Rooms: create, list, read, change, delete; data to members.' },
      { name: 'participants', description: 'The members of a room; their tracks.' },
      { name: 'calls', description: 'Calls to the handlers clients registered (calls.ts).' },
    ],
    paths,
    components: {
      securitySchemes: {
        apiToken: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT signed (HS256) with an API key’s secret: `iss` the key id, `exp` required, claims AdminClaims (see components.schemas.AdminClaims).',
        },
      },
      headers: {
        RequestId: {
          description:
            'The request’s id: the one it sent in `x-request-id` when well formed (1-128 of letters, digits, `.`, `_`, `:`, `-`), else a new one. In the API’s logs.',
          schema: { type: 'string' },
        },
      },
      responses,
      schemas: Object.fromEntries(
        Object.entries(SHARED_SCHEMAS).map(([name, s]) => [name, withRefs(plain(s), name)]),
      ),
    },
  };
}

/** docs/openapi.json as `./run docs` writes it (prettier'd, trailing newline). */
export async function renderOpenapi(): Promise<string> {
  const options = (await prettier.resolveConfig(OPENAPI)) ?? {};
  return await prettier.format(`${JSON.stringify(openapiDocument(), null, 2)}\n`, {
    ...options,
    filepath: OPENAPI,
  });
}
