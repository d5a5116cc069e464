/**
 * `./run start`: the whole platform on this machine. NATS and PostgreSQL are used when
 * reachable (NATS_URL, DATABASE_URL, or the local defaults) and started otherwise; the
 * database is migrated; the five services start; their URLs are printed. Ctrl-C (or
 * SIGTERM) stops the services gracefully, then whatever infrastructure was started here.
 *
 * Env: NATS_URL with SWITCHBOARD_NATS_AUTH_DIR (a NATS and its identities' passwords; else
 * nats-server is started with fresh credentials), DATABASE_URL, NATS_SUBJECT_PREFIX,
 * LOG_LEVEL, SWITCHBOARD_PORT_BASE (default 8080: gateway, rooms, media, events, api on
 * base..base+4), SWITCHBOARD_OPS_PORT_BASE (default base + 1000: their ops ports, /metrics
 * and the status page), and any service setting. The server API gets the published
 * development key (DEV_API_KEY) unless API_KEYS or API_KEYS_FILE is set.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  PlatformStatus,
  SERVICE_NAMES,
  validator,
  type ServiceName,
} from '@switchboard/protocol';
import { ensureInfra, infraFromEnv, redact, type Infra } from './infra.ts';
import { formatLogLine } from './logfmt.ts';
import { STATE_DIR } from './paths.ts';
import { createDatabase, probePostgres } from './postgres.ts';
import { migrate } from './platform.ts';
import { ServiceProcess } from './services.ts';
import { DEV_HS256_SECRET, mintToken } from './tokens.ts';

const say = (msg: string): void => {
  process.stdout.write(`${'start'.padEnd(8)} ${msg}\n`);
};

function portBase(variable: string, def: string): number {
  const raw = process.env[variable] ?? def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65531) {
    process.stderr.write(`start: ${variable} must be a port number (got ${JSON.stringify(raw)})\n`);
    process.exit(78);
  }
  return n;
}

/** The rooms database: DATABASE_URL when given (created if missing), else `switchboard`. */
async function roomsDatabase(infra: Infra): Promise<string> {
  const configured = process.env['DATABASE_URL'];
  if (configured !== undefined && configured !== '' && infra.started.postgres === undefined) {
    const probe = await probePostgres(configured);
    if (probe.ok) return configured;
    const name = new URL(configured).pathname.slice(1);
    return await createDatabase(infra.pgServerUrl, name === '' ? 'switchboard' : name);
  }
  return await createDatabase(infra.pgServerUrl, 'switchboard');
}

async function main(): Promise<void> {
  const base = portBase('SWITCHBOARD_PORT_BASE', '8080');
  const opsBase = portBase('SWITCHBOARD_OPS_PORT_BASE', String(base + 1000));
  mkdirSync(STATE_DIR, { recursive: true });
  const infra = await ensureInfra({ ...infraFromEnv(), log: say });

  const services = new Map<ServiceName, ServiceProcess>();
  let stopping = false;
  const stopAll = async (code: number): Promise<never> => {
    stopping = true;
    // Gateway first (clients go elsewhere), then the services behind it, then NATS/PostgreSQL.
    for (const name of [...SERVICE_NAMES]) {
      const svc = services.get(name);
      if (svc === undefined) continue;
      const exit = await svc.stop();
      say(`${name} stopped (exit ${exit})`);
    }
    await infra.stop();
    if (infra.started.nats !== undefined || infra.started.postgres !== undefined)
      say('infrastructure stopped');
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      process.stdout.write('\n');
      say(`${sig}: stopping`);
      void stopAll(0);
    });
  }

  try {
    const databaseUrl = await roomsDatabase(infra);
    say(`migrating ${redact(databaseUrl)}`);
    say((await migrate(databaseUrl)).trim());

    const common = {
      NATS_URL: infra.natsUrl,
      NATS_SUBJECT_PREFIX: process.env['NATS_SUBJECT_PREFIX'] ?? 'sb',
      HTTP_HOST: process.env['HTTP_HOST'] ?? '127.0.0.1',
      OPS_HOST: process.env['OPS_HOST'] ?? '127.0.0.1',
    };
    const devAuth =
      process.env['AUTH_HS256_SECRET'] === undefined &&
      process.env['AUTH_RS256_PUBLIC_KEYS'] === undefined;
    const devApiKey =
      (process.env['API_KEYS'] ?? '') === '' && (process.env['API_KEYS_FILE'] ?? '') === '';
    const perService: Record<ServiceName, Record<string, string>> = {
      // Local development signs tokens with the dev secret unless a key is configured.
      // The demo app's dev tokens (POST /dev/token) are on here, and only here.
      gateway: {
        GATEWAY_DEV_TOKENS: process.env['GATEWAY_DEV_TOKENS'] ?? (devAuth ? 'true' : 'false'),
        ...(devAuth ? { AUTH_HS256_SECRET: DEV_HS256_SECRET } : {}),
      },
      rooms: { DATABASE_URL: databaseUrl },
      media: {},
      events: {},
      // The published development key, accepted here only (API_DEV_KEYS).
      api: devApiKey ? { API_KEYS: `${DEV_API_KEY}:${DEV_API_SECRET}`, API_DEV_KEYS: 'true' } : {},
    };
    await Promise.all(
      SERVICE_NAMES.map(async (name, i) => {
        const svc = await ServiceProcess.start(
          name,
          {
            ...common,
            ...infra.natsCredentials.env(name),
            ...perService[name],
            HTTP_PORT: String(base + i),
            OPS_PORT: String(opsBase + i),
          },
          {
            detached: true,
            logFile: join(STATE_DIR, `${name}.log`),
            onLine: (line) => {
              process.stdout.write(`${formatLogLine(name, line)}\n`);
            },
          },
        );
        services.set(name, svc);
        void svc.process.exited.then(({ code, signal }) => {
          if (stopping) return;
          say(`${name} exited unexpectedly (code ${code}, signal ${signal}); stopping everything`);
          void stopAll(1);
        });
      }),
    );
    await Promise.all(
      [...services.values()].map(async (s) => {
        await s.waitReady(60_000);
      }),
    );

    const gateway = services.get('gateway');
    if (gateway === undefined) throw new Error('gateway did not start');
    const api = services.get('api');
    const res = await fetch(`${gateway.opsUrl}/api/status`, {
      signal: AbortSignal.timeout(5000),
    });
    const status = validator(PlatformStatus).parse(await res.json());
    const answering = status.ok ? status.value.services.filter((s) => s.ok).length : 0;

    const lines = [
      '',
      'Switchboard is running.',
      `  gateway   ${gateway.url}/   (demo app; WebSocket API at ${gateway.url.replace(/^http/, 'ws')}/api)`,
      `  status    ${gateway.opsUrl}/   (status page, on the gateway's ops port)`,
      ...SERVICE_NAMES.flatMap((name) => {
        const s = services.get(name);
        return s === undefined
          ? []
          : [`  ${name.padEnd(8)}  ${s.url}/healthz  ${s.url}/readyz  ops: ${s.opsUrl}/metrics`];
      }),
      ...(api === undefined
        ? []
        : [
            `  api       ${api.url}/v1/rooms   (the server API, docs/openapi.json${devApiKey ? `; development key "${DEV_API_KEY}", secret "${DEV_API_SECRET}"` : ''})`,
            ...(devApiKey
              ? [
                  `            admin command: SWITCHBOARD_API_URL=${api.url} SWITCHBOARD_API_KEY=${DEV_API_KEY} SWITCHBOARD_API_SECRET=${DEV_API_SECRET} node services/rooms/src/admin.ts rooms`,
                ]
              : []),
          ]),
      `  NATS      ${redact(infra.natsUrl)}   subjects under "${common.NATS_SUBJECT_PREFIX}."; each service its own identity`,
      `            operators' bus tools: NATS_URL=${redact(infra.natsUrl)} NATS_USER=admin NATS_PASSWORD_FILE=${infra.natsCredentials.passwordFile('admin')}`,
      ...(devAuth
        ? [
            `  tokens    signed with the dev secret (AUTH_HS256_SECRET unset); one for every room, 24 h:`,
            `            ${await mintToken({ sub: 'dev-user', rooms: ['*'], expiresInS: 86_400 })}`,
          ]
        : []),
      `  Postgres  ${redact(databaseUrl)}`,
      `  logs      ${STATE_DIR}/*.log`,
      `  ${answering} of ${SERVICE_NAMES.length} services answer over NATS. Ctrl-C stops everything.`,
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (err) {
    say(`start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll(1);
  }
}

await main();
