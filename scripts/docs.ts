/**
 * Generates the documentation's tables from libs/protocol (the one place they are defined):
 * the configuration table (docs/configuration.md), the error codes and the bus's identities
 * (docs/bus.md). `./run docs` rewrites those pages between their markers; a test fails when
 * one is out of date. It also writes docs/asyncapi.json
 * (scripts/asyncapi.ts), the AsyncAPI description of the room events and telemetry,
 * docs/openapi.json (scripts/openapi.ts), the OpenAPI description of the server API, and
 * deploy/nats/switchboard-auth.conf (`./run nats-config` for the default prefix `sb`).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import type { TSchema } from 'typebox';
import {
  ErrorCodes,
  NATS_IDENTITIES,
  NATS_IDENTITY_ROLES,
  SERVICE_NAMES,
  ServiceConfigs,
  natsPermissions,
  type ErrorName,
  type ServiceName,
} from '@switchboard/protocol';
import { ASYNCAPI, renderAsyncapi } from './asyncapi.ts';
import { natsConfig } from './nats-config.ts';
import { OPENAPI, renderOpenapi } from './openapi.ts';

/** The NATS server configuration of the default prefix, for operators without the tooling. */
export const NATS_CONF = fileURLToPath(
  new URL('../deploy/nats/switchboard-auth.conf', import.meta.url),
);

interface Row {
  variable: string;
  description: string;
  defaults: Map<ServiceName, string>;
}

function show(value: unknown): string {
  if (value === undefined) return '—';
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

function choices(schema: TSchema): string {
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  if (anyOf === undefined) return '';
  const values = anyOf.map((s) => (s as { const?: unknown }).const);
  return values.every((v) => v !== undefined) ? ` One of ${values.map(show).join(', ')}.` : '';
}

export function configTable(): string {
  const rows = new Map<string, Row>();
  for (const service of SERVICE_NAMES) {
    const props = ServiceConfigs[service].properties as Record<string, TSchema>;
    for (const [variable, schema] of Object.entries(props)) {
      const s = schema as { description?: string; default?: unknown };
      const row = rows.get(variable) ?? {
        variable,
        description: `${s.description ?? ''}.${choices(schema)}`.replace('..', '.'),
        defaults: new Map<ServiceName, string>(),
      };
      row.defaults.set(service, show(s.default));
      rows.set(variable, row);
    }
  }
  const lines = ['| variable | services | default | description |', '| --- | --- | --- | --- |'];
  for (const row of rows.values()) {
    const services = [...row.defaults.keys()];
    const distinct = new Set(row.defaults.values());
    const def =
      distinct.size === 1
        ? [...distinct][0]
        : services.map((s) => `${s}: ${row.defaults.get(s) ?? '—'}`).join('<br>');
    const who = services.length === SERVICE_NAMES.length ? 'all' : services.join(', ');
    lines.push(`| \`${row.variable}\` | ${who} | ${def ?? '—'} | ${row.description} |`);
  }
  return lines.join('\n');
}

export function errorTable(): string {
  const lines = ['| code | name | message | retry |', '| --- | --- | --- | --- |'];
  for (const name of Object.keys(ErrorCodes) as ErrorName[]) {
    const { code, message, retry } = ErrorCodes[name];
    lines.push(`| \`0x${code.toString(16)}\` (${code}) | \`${name}\` | ${message} | ${retry} |`);
  }
  return lines.join('\n');
}

/** What each bus identity may publish and subscribe to, under the default prefix `sb`. */
export function permissionsTable(): string {
  const table = natsPermissions('sb');
  const list = (subjects: readonly string[]): string => subjects.map((s) => `\`${s}\``).join(' ');
  const lines = [
    '| identity | for | may publish (request) | may subscribe |',
    '| --- | --- | --- | --- |',
  ];
  for (const identity of NATS_IDENTITIES) {
    const p = table[identity];
    lines.push(
      `| \`${identity}\` | ${NATS_IDENTITY_ROLES[identity]} | ${list(p.publish)}${p.allowResponses ? ' — and replies to requests it receives' : ''} | ${list(p.subscribe)} |`,
    );
  }
  return lines.join('\n');
}

/** The generated sections, by the page (under docs/) that holds them between markers. */
const SECTIONS: { page: string; name: string; source: string; render: () => string }[] = [
  {
    page: 'configuration.md',
    name: 'config-table',
    source: 'libs/protocol/src/config.ts',
    render: configTable,
  },
  {
    page: 'bus.md',
    name: 'error-table',
    source: 'libs/protocol/src/errors.ts',
    render: errorTable,
  },
  {
    page: 'bus.md',
    name: 'permissions-table',
    source: 'libs/protocol/src/permissions.ts',
    render: permissionsTable,
  },
];

/** The pages with generated sections, as paths. */
export const GENERATED_PAGES: readonly string[] = [...new Set(SECTIONS.map((s) => s.page))].map(
  (page) => fileURLToPath(new URL(`../docs/${page}`, import.meta.url)),
);

/** `path`'s text with every generated section it holds rewritten from libs/protocol (and prettier'd). */
export async function renderPage(path: string, text: string): Promise<string> {
  let out = text;
  for (const { page, name, source, render } of SECTIONS) {
    if (basename(path) !== page) continue;
    const start = `<!-- ${name}:start (generated by ./run docs from ${source}) -->`;
    const end = `<!-- ${name}:end -->`;
    const a = out.indexOf(start);
    const b = out.indexOf(end);
    if (a < 0 || b < a) throw new Error(`docs/${page} lacks the markers ${start} … ${end}`);
    out = `${out.slice(0, a + start.length)}\n${render()}\n${out.slice(b)}`;
  }
  const options = (await prettier.resolveConfig(path)) ?? {};
  return await prettier.format(out, { ...options, filepath: path });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const path of GENERATED_PAGES) {
    const before = readFileSync(path, 'utf8');
    const after = await renderPage(path, before);
    if (after !== before) writeFileSync(path, after);
    process.stdout.write(
      after === before
        ? `docs/${basename(path)} is up to date\n`
        : `docs/${basename(path)} tables updated\n`,
    );
  }
  const conf = natsConfig('sb', 'password');
  const oldConf = existsSync(NATS_CONF) ? readFileSync(NATS_CONF, 'utf8') : undefined;
  if (conf !== oldConf) {
    mkdirSync(dirname(NATS_CONF), { recursive: true });
    writeFileSync(NATS_CONF, conf);
  }
  process.stdout.write(
    conf === oldConf
      ? 'deploy/nats/switchboard-auth.conf is up to date\n'
      : 'deploy/nats/switchboard-auth.conf written\n',
  );
  const spec = await renderAsyncapi();
  let old: string | undefined;
  try {
    old = readFileSync(ASYNCAPI, 'utf8');
  } catch {
    old = undefined;
  }
  if (spec !== old) {
    mkdirSync(dirname(ASYNCAPI), { recursive: true });
    writeFileSync(ASYNCAPI, spec);
  }
  process.stdout.write(
    spec === old ? 'docs/asyncapi.json is up to date\n' : 'docs/asyncapi.json written\n',
  );
  const openapi = await renderOpenapi();
  let oldOpenapi: string | undefined;
  try {
    oldOpenapi = readFileSync(OPENAPI, 'utf8');
  } catch {
    oldOpenapi = undefined;
  }
  if (openapi !== oldOpenapi) writeFileSync(OPENAPI, openapi);
  process.stdout.write(
    openapi === oldOpenapi ? 'docs/openapi.json is up to date\n' : 'docs/openapi.json written\n',
  );
}
