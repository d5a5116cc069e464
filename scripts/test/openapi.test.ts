/**
 * docs/openapi.json: what `./run docs` writes (the committed file is not stale), and a faithful
 * description of ApiRoutes — one operation per route, its id the table's key, its parameters,
 * body and reply the route's own schemas (references resolved), every error reply an
 * ApiErrorBody, the bearer scheme on every operation. That the running service registers
 * exactly these routes is test/api/routes.test.ts's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TSchema } from 'typebox';
import {
  API_OPERATIONS,
  ApiErrorBody,
  ApiRoutes,
  pathParams,
  type ApiRoute,
} from '@switchboard/protocol';
import { OPENAPI, SHARED_SCHEMAS, errorResponsesOf, renderOpenapi } from '../openapi.ts';

type Obj = Record<string, unknown>;
interface Operation {
  operationId: string;
  parameters?: { name: string; in: string; required: boolean; schema: unknown }[];
  requestBody?: { required: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, Obj>;
}
interface Doc {
  openapi: string;
  security: Record<string, unknown[]>[];
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, Obj>;
    schemas: Record<string, unknown>;
    responses: Record<string, Obj>;
    headers: Record<string, Obj>;
  };
}

const committed = readFileSync(OPENAPI, 'utf8');
const doc = JSON.parse(committed) as Doc;
const plain = (s: TSchema): unknown => JSON.parse(JSON.stringify(s));

/** `value` with every `$ref` of the document replaced by what it points at. */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (typeof value !== 'object' || value === null) return value;
  const ref = (value as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') {
    const target = ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<unknown>((at, key) => (at as Obj | undefined)?.[key], doc);
    expect(target, ref).toBeDefined();
    return resolve(target);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
}

const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
);

describe('docs/openapi.json', () => {
  it('is what ./run docs writes (run it when this fails)', async () => {
    expect(await renderOpenapi()).toBe(committed);
  });

  it('is OpenAPI 3.1 with the bearer scheme on every operation', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.security).toEqual([{ apiToken: [] }]);
    expect(doc.components.securitySchemes['apiToken']).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
  });

  it('has one operation per route of ApiRoutes, its id the key', () => {
    expect(operations.map((o) => o.op.operationId).sort()).toEqual([...API_OPERATIONS].sort());
    for (const { path, method, op } of operations) {
      const route: ApiRoute = ApiRoutes[op.operationId as keyof typeof ApiRoutes];
      expect(`${method} ${path}`).toBe(`${route.method} ${route.path}`);
    }
  });

  it("describes each route's parameters, body and reply with its own schemas", () => {
    for (const { op } of operations) {
      const route: ApiRoute = ApiRoutes[op.operationId as keyof typeof ApiRoutes];
      const params = op.parameters ?? [];
      const inPath = params.filter((p) => p.in === 'path');
      expect(inPath.map((p) => p.name)).toEqual(pathParams(route.path));
      for (const [where, schema] of [
        ['path', route.params],
        ['query', route.query],
      ] as const) {
        const props = ((schema === undefined ? {} : plain(schema)) as { properties?: Obj })
          .properties;
        const declared = params.filter((p) => p.in === where);
        expect(
          declared.map((p) => p.name),
          op.operationId,
        ).toEqual(Object.keys(props ?? {}));
        for (const p of declared) expect(resolve(p.schema)).toEqual(props?.[p.name]);
      }
      if (route.body === undefined) {
        expect(op.requestBody).toBeUndefined();
      } else {
        expect(op.requestBody?.required).toBe(true);
        expect(resolve(op.requestBody?.content['application/json']?.schema)).toEqual(
          plain(route.body),
        );
      }
      const success = op.responses[String(route.status)];
      expect(success, op.operationId).toBeDefined();
      const content = (success?.['content'] as Record<string, { schema: unknown }> | undefined)?.[
        'application/json'
      ];
      if (route.reply === undefined) expect(content).toBeUndefined();
      else expect(resolve(content?.schema)).toEqual(plain(route.reply));
    }
  });

  it('gives every error reply as an ApiErrorBody, with the request id', () => {
    expect(doc.components.schemas['ApiErrorBody']).toEqual(plain(ApiErrorBody));
    for (const [name, schema] of Object.entries(SHARED_SCHEMAS)) {
      expect(resolve(doc.components.schemas[name]), name).toEqual(plain(schema));
    }
    for (const { op } of operations) {
      const errors = Object.entries(op.responses).filter(([status]) => Number(status) >= 400);
      expect(errors.length).toBe(errorResponsesOf(op.operationId as never).length);
      for (const status of ['400', '401', '403', '500', '503']) {
        expect(Object.keys(op.responses), op.operationId).toContain(status);
      }
      for (const [status, response] of [...errors, ...Object.entries(op.responses)]) {
        const r = resolve(response) as {
          headers?: Obj;
          content?: Record<string, { schema: unknown }>;
        };
        expect(r.headers?.['x-request-id'], `${op.operationId} ${status}`).toBeDefined();
        if (Number(status) >= 400) {
          expect(r.content?.['application/json']?.schema).toEqual(plain(ApiErrorBody));
        }
      }
    }
  });
});
