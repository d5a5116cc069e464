/**
 * Database migrations of the rooms service.
 *
 *   node src/db/migrate.ts deploy              apply pending migrations (prisma migrate deploy)
 *   node src/db/migrate.ts status              what is applied, pending, failed or edited
 *   node src/db/migrate.ts check               exit 2 when the schema and the migrations drift
 *   node src/db/migrate.ts create --name <n>   write a migration for the schema's changes
 *   node src/db/migrate.ts resolve --rolled-back <migration> | --applied <migration>
 *
 * DATABASE_URL names the database (`check` and `create` only use its server, for a
 * temporary shadow database). `deploy` runs the Prisma CLI's own `migrate deploy` when a
 * native schema engine is installed (PRISMA_SCHEMA_ENGINE_BINARY, or the binary
 * @prisma/engines downloads where it can), and the wasm engine otherwise; both keep the
 * same `_prisma_migrations` table.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import config from '../../prisma.config.ts';
import {
  MIGRATION_LOCK,
  NO_FILTERS,
  openSchemaEngine,
  readMigrations,
  readSchema,
} from './schema-engine.ts';
import type { DiffTarget, SchemasContainer } from '@prisma/schema-engine-wasm/schema_engine_bg';

const ROOMS_DIR = resolve(fileURLToPath(new URL('../../', import.meta.url)));
export const SCHEMA_PATH = resolve(ROOMS_DIR, config.schema ?? 'prisma/schema.prisma');
export const MIGRATIONS_DIR = resolve(ROOMS_DIR, config.migrations?.path ?? 'prisma/migrations');

const require = createRequire(import.meta.url);

/** A native schema-engine binary that runs, if this machine has one. */
export function nativeSchemaEngine(): string | undefined {
  const candidates: string[] = [];
  const fromEnv = process.env['PRISMA_SCHEMA_ENGINE_BINARY'];
  if (fromEnv !== undefined && fromEnv !== '') candidates.push(resolve(fromEnv));
  try {
    const enginesDir = dirname(
      require.resolve('@prisma/engines/package.json', {
        paths: [dirname(require.resolve('prisma/package.json'))],
      }),
    );
    for (const f of readdirSync(enginesDir))
      if (f.startsWith('schema-engine-')) candidates.push(join(enginesDir, f));
  } catch {
    // @prisma/engines is not installed: no native engine.
  }
  for (const bin of candidates) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      continue;
    }
    if (spawnSync(bin, ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0)
      return bin;
  }
  return undefined;
}

export interface DeployResult {
  engine: 'native' | 'wasm';
  applied: string[];
}

/** Apply every pending migration to `databaseUrl`. */
export async function deployMigrations(databaseUrl: string): Promise<DeployResult> {
  const native = nativeSchemaEngine();
  if (native !== undefined) {
    const prismaCli = join(dirname(require.resolve('prisma/package.json')), 'build', 'index.js');
    const r = spawnSync(process.execPath, [prismaCli, 'migrate', 'deploy'], {
      cwd: ROOMS_DIR,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PRISMA_SCHEMA_ENGINE_BINARY: native,
        CHECKPOINT_DISABLE: '1',
      },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`prisma migrate deploy failed:\n${r.stdout}${r.stderr}`);
    return {
      engine: 'native',
      applied: [...r.stdout.matchAll(/└─ (\S+)\/migration\.sql/g)].map((m) => m[1] ?? ''),
    };
  }
  const { engine, close } = await openSchemaEngine(databaseUrl, await readSchema(SCHEMA_PATH));
  try {
    const res = await engine.applyMigrations({
      migrationsList: await readMigrations(MIGRATIONS_DIR),
      filters: NO_FILTERS,
    });
    return { engine: 'wasm', applied: res.appliedMigrationNames };
  } finally {
    await close();
  }
}

/**
 * The SQL that would take `from` to `to` ('' when they agree), computed by the schema
 * engine on `url`'s server (replaying migrations on a temporary shadow database there).
 */
async function diff(
  url: string,
  from: (schema: SchemasContainer) => Promise<DiffTarget>,
): Promise<string> {
  const schema = await readSchema(SCHEMA_PATH);
  const { engine, close } = await openSchemaEngine(url, schema);
  try {
    const res = await engine.diff({
      from: await from(schema),
      to: { tag: 'schemaDatamodel', ...schema },
      script: true,
      exitCode: true,
      filters: NO_FILTERS,
    });
    return res.exitCode === 0 ? '' : (res.stdout ?? '');
  } finally {
    await close();
  }
}

/** What a migration would need for the migrations folder to yield exactly the schema ('' when nothing). */
export async function migrationsDrift(serverUrl: string): Promise<string> {
  return await diff(serverUrl, async () => ({
    tag: 'migrations',
    ...(await readMigrations(MIGRATIONS_DIR)),
  }));
}

/** What the database at `databaseUrl` lacks of the schema ('' when nothing; after deploy: nothing). */
export async function databaseDrift(databaseUrl: string): Promise<string> {
  return await diff(databaseUrl, async (schema) => ({
    tag: 'schemaDatasource',
    ...schema,
    configDir: ROOMS_DIR,
  }));
}

function utcTimestamp(d = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

function slug(name: string): string {
  return name
    .replace(/([a-z\d])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z\d]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 200);
}

/**
 * Write `<timestamp>_<name>/migration.sql` with what the schema changed since the last
 * migration (like `prisma migrate dev --create-only`). Returns its folder, or undefined
 * when nothing changed.
 */
export async function createMigration(
  serverUrl: string,
  name: string,
): Promise<string | undefined> {
  const migrations = await readMigrations(MIGRATIONS_DIR);
  // Diff from the history replayed on a shadow database, as `migrate dev` does. The engine
  // needs the provider from the lock file, which the first migration creates.
  const sql = await diff(serverUrl, async () => ({
    tag: 'migrations',
    ...migrations,
    lockfile: { ...migrations.lockfile, content: migrations.lockfile.content ?? MIGRATION_LOCK },
  }));
  if (sql === '') return undefined;
  const dir = join(migrations.baseDir, `${utcTimestamp()}_${slug(name)}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'migration.sql'), sql, 'utf8');
  await writeFile(join(migrations.baseDir, migrations.lockfile.path), MIGRATION_LOCK, 'utf8');
  return dir;
}

async function cli(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      applied: { type: 'string' },
      'rolled-back': { type: 'string' },
    },
  });
  const url = process.env['DATABASE_URL'] ?? '';
  if (!/^postgres(ql)?:\/\//.test(url)) {
    process.stderr.write('migrate: DATABASE_URL must be a postgresql:// URL\n');
    return 78;
  }
  switch (positionals[0]) {
    case 'deploy': {
      const r = await deployMigrations(url);
      process.stdout.write(
        r.applied.length === 0
          ? `No pending migrations (${r.engine} schema engine).\n`
          : `Applied ${r.applied.join(', ')} (${r.engine} schema engine).\n`,
      );
      return 0;
    }
    case 'check': {
      const drift = await migrationsDrift(url);
      if (drift === '') {
        process.stdout.write('The migrations produce exactly the schema.\n');
        return 0;
      }
      process.stdout.write(
        `The schema and the migrations drift; a migration would need:\n${drift}`,
      );
      return 2;
    }
    case 'create': {
      if (values.name === undefined || values.name === '')
        throw new Error('create needs --name <name>');
      const dir = await createMigration(url, values.name);
      process.stdout.write(
        dir === undefined
          ? 'No schema changes; no migration created.\n'
          : `Created ${relative(process.cwd(), dir)}/migration.sql\n`,
      );
      return 0;
    }
    case 'status': {
      const { engine, close } = await openSchemaEngine(url, await readSchema(SCHEMA_PATH));
      try {
        const res = await engine.diagnoseMigrationHistory({
          migrationsList: await readMigrations(MIGRATIONS_DIR),
          optInToShadowDatabase: false,
          filters: NO_FILTERS,
        });
        process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return res.history === null &&
          res.failedMigrationNames.length === 0 &&
          res.editedMigrationNames.length === 0
          ? 0
          : 1;
      } finally {
        await close();
      }
    }
    case 'resolve': {
      const { engine, close } = await openSchemaEngine(url, await readSchema(SCHEMA_PATH));
      try {
        if (values.applied !== undefined) {
          await engine.markMigrationApplied({
            migrationName: values.applied,
            migrationsList: await readMigrations(MIGRATIONS_DIR),
          });
        } else if (values['rolled-back'] !== undefined) {
          await engine.markMigrationRolledBack({ migrationName: values['rolled-back'] });
        } else {
          throw new Error('resolve needs --applied <migration> or --rolled-back <migration>');
        }
        return 0;
      } finally {
        await close();
      }
    }
    default:
      process.stderr.write(
        'usage: migrate.ts deploy | status | check | create --name <name> | resolve --applied|--rolled-back <migration>\n',
      );
      return 64;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`migrate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
