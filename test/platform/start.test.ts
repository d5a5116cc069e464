/**
 * `./run start`'s orchestrator end to end, on a machine where neither NATS nor PostgreSQL
 * is reachable (the configured URLs point at closed ports): it starts both, migrates, brings
 * up the five services, every /readyz answers 200; SIGINT (Ctrl-C) stops everything it
 * started and leaves no process behind. The services listen on an address of their own
 * (HTTP_HOST=127.0.0.2, as a host's address would be: ./run start must ask that one whether
 * they are ready), and a clean start warns of nothing but the development settings it turns on.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ManagedProcess,
  NODE,
  ROOT,
  freePort,
  pgDataDir,
  pidAlive,
  tcpReachable,
  uniquePrefix,
} from '@switchboard/devstack';
import { ApiClient } from '@switchboard/client/server';
import { DEV_API_KEY, DEV_API_SECRET } from '@switchboard/protocol';

let stateDir: string | undefined;
let start: ManagedProcess | undefined;

afterAll(async () => {
  await start?.stop('SIGKILL');
  if (stateDir !== undefined) {
    await rm(stateDir, { recursive: true, force: true });
    await rm(pgDataDir(stateDir), { recursive: true, force: true });
  }
});

/** Every process below `pid` (children, grandchildren, ...). */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of rows) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

/**
 * Five consecutive ports free now, below Linux's ephemeral range (32768 and up), where no
 * outgoing connection of another process can take one of them before the services bind it.
 */
async function freeBase(avoid?: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    if (avoid !== undefined && Math.abs(base - avoid) < 5) continue;
    const taken = await Promise.all(
      [0, 1, 2, 3, 4].map(async (i) => await tcpReachable('127.0.0.1', base + i, 200)),
    );
    if (!taken.some(Boolean)) return base;
  }
}

/** Where the services' public servers listen (the ops servers stay on 127.0.0.1). */
const PUBLIC = '127.0.0.2';

describe('./run start', () => {
  it('brings up NATS, PostgreSQL and the five services, and Ctrl-C stops them all', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'sb-start-'));
    const base = await freeBase();
    const opsBase = await freeBase(base);
    start = new ManagedProcess('start', NODE, [join(ROOT, 'tools/devstack/src/start.ts')], {
      cwd: ROOT,
      env: {
        // Not the test run's NATS credentials: ./run start makes its own.
        ...Object.fromEntries(
          Object.entries(process.env).filter(([k]) => k !== 'SWITCHBOARD_NATS_AUTH_DIR'),
        ),
        NATS_URL: `nats://127.0.0.1:${await freePort()}`,
        DATABASE_URL: `postgresql://postgres@127.0.0.1:${await freePort()}/switchboard`,
        NATS_SUBJECT_PREFIX: uniquePrefix('start'),
        SWITCHBOARD_PORT_BASE: String(base),
        SWITCHBOARD_OPS_PORT_BASE: String(opsBase),
        SWITCHBOARD_STATE_DIR: stateDir,
        HTTP_HOST: PUBLIC,
        MEDIASOUP_RTC_PORT: '0',
        MEDIASOUP_WORKERS: '1',
      },
    });
    await start.waitForLine(/Switchboard is running\./, 90_000);
    const output = start.output();
    expect(output).toMatch(/NATS: not using .* without its credentials/);
    expect(output).toMatch(/NATS: started .* with authentication/);
    // Each service its own identity; no password printed (the admin's is named by its file).
    const authDir = join(stateDir, 'nats', 'auth');
    for (const identity of ['gateway', 'rooms', 'media', 'events', 'api', 'admin', 'test']) {
      const password = readFileSync(join(authDir, `${identity}.password`), 'utf8').trim();
      expect(password.length).toBeGreaterThan(20);
      expect(output).not.toContain(password);
    }
    expect(output).toContain(
      `NATS_USER=admin NATS_PASSWORD_FILE=${join(authDir, 'admin.password')}`,
    );
    expect(output).toMatch(/PostgreSQL: .* unreachable .*starting a cluster/);
    expect(output).toMatch(/Applied \S+_init/);
    await start.waitForLine(/5 of 5 services answer over NATS/, 5000);
    expect(output).toContain(`WebSocket API at ws://${PUBLIC}:${base}/api`);
    // No warning but the development settings ./run start turns on (dev tokens, dev API key):
    // nothing fails on the way up (the outbox relay waits for NATS; the events service waits
    // for the rooms service's stream without calling it a failure).
    const warnings = start
      .output()
      .split('\n')
      .filter((l) => /\bWARN\b/.test(l))
      .filter((l) => !/GATEWAY_DEV_TOKENS is on|API_DEV_KEYS is on/.test(l));
    expect(warnings).toEqual([]);

    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://${PUBLIC}:${base + i}/readyz`);
      expect(res.status).toBe(200);
    }
    const page = await fetch(`http://${PUBLIC}:${base}/`);
    expect(await page.text()).toContain('<title>Switchboard demo</title>');
    // The status page and /metrics are on the ops ports, not the public ones.
    const status = await fetch(`http://127.0.0.1:${opsBase}/`);
    expect(await status.text()).toContain('<title>Switchboard</title>');
    expect(output).toContain(`status    http://127.0.0.1:${opsBase}/`);
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`http://127.0.0.1:${opsBase + i}/metrics`)).status).toBe(200);
      expect((await fetch(`http://${PUBLIC}:${base + i}/metrics`)).status).toBe(404);
    }
    expect((await fetch(`http://${PUBLIC}:${base}/api/status`)).status).toBe(404);
    // The demo app gets its tokens from the gateway here (./run start turns dev tokens on).
    const token = await fetch(`http://${PUBLIC}:${base}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'r', name: 'n' }),
    });
    expect(token.status).toBe(200);
    // The server API, with the published development key (printed: it is no secret).
    const api = `http://${PUBLIC}:${base + 4}`;
    expect(output).toContain(`api       ${api}/v1/rooms`);
    expect(output).toContain(
      `SWITCHBOARD_API_KEY=${DEV_API_KEY} SWITCHBOARD_API_SECRET=${DEV_API_SECRET}`,
    );
    expect((await fetch(`${api}/v1/rooms`)).status).toBe(401);
    const rooms = await new ApiClient({
      url: api,
      keyId: DEV_API_KEY,
      secret: DEV_API_SECRET,
    }).listRooms({});
    expect(rooms.rooms).toEqual([]);

    const pid = start.pid ?? 0;
    const tree = descendants(pid);
    // 5 services + nats-server + postgres (and its backends) + a mediasoup worker.
    expect(tree.length).toBeGreaterThanOrEqual(7);

    start.signal('SIGINT');
    const exit = await start.exited;
    expect(exit.code).toBe(0);
    expect(start.output()).toMatch(/gateway stopped \(exit 0\)/);
    expect(start.output()).toMatch(/infrastructure stopped/);
    // The run's passwords go with it.
    expect(existsSync(authDir)).toBe(false);
    const left = tree.filter(pidAlive);
    expect(left).toEqual([]);
  });
});
