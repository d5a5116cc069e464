/**
 * The project starts its own nats-server (JetStream, the bus identities: authentication on)
 * unless given a NATS with its credentials, and its own PostgreSQL cluster where none is
 * reachable (here: the configured URL points at a closed port) — from the Debian packages, in
 * project-owned directories — and stops them.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { ensureInfra, freePort, probeNats, probePostgres, type Infra } from '@switchboard/devstack';

let stateDir: string;
let infra: Infra;
const messages: string[] = [];

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'sb-infra-'));
  const closedNats = await freePort();
  const closedPg = await freePort();
  infra = await ensureInfra({
    natsUrl: `nats://127.0.0.1:${closedNats}`,
    pgServerUrl: `postgresql://postgres@127.0.0.1:${closedPg}/postgres`,
    stateDir,
    ephemeral: true,
    log: (m) => messages.push(m),
  });
});

afterAll(async () => {
  await infra.stop();
  await rm(stateDir, { recursive: true, force: true });
});

describe('infrastructure fallback', () => {
  it('starts nats-server with JetStream and the bus identities (NATS_URL alone is not used)', async () => {
    expect(infra.started.nats).toBeDefined();
    expect(messages.some((m) => /NATS: not using .* without its credentials/.test(m))).toBe(true);
    expect(messages.some((m) => /NATS: started .* with authentication/.test(m))).toBe(true);
    // No anonymous connection; passwords in files of this user only, never in the log.
    const anonymous = await probeNats(infra.natsUrl, 1000);
    expect(anonymous.ok).toBe(false);
    expect(anonymous.ok ? '' : anonymous.reason).toMatch(/Authorization/i);
    const file = infra.natsCredentials.passwordFile('gateway');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(infra.natsCredentials.dir).mode & 0o777).toBe(0o700);
    expect(messages.join('\n')).not.toContain(infra.natsCredentials.password('gateway'));
    const nc = await connect({
      servers: infra.natsUrl,
      ...infra.natsCredentials.connectOptions('test'),
    });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      expect(info.limits).toBeDefined();
    } finally {
      await nc.close();
    }
  });

  it('initialises and starts a PostgreSQL cluster when PostgreSQL is unreachable', async () => {
    expect(infra.started.postgres).toBeDefined();
    const client = new pg.Client({ connectionString: infra.pgServerUrl });
    await client.connect();
    try {
      const r = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
      expect(r.rows[0]?.v).toMatch(/^\d+/);
    } finally {
      await client.end();
    }
  });

  it('stops what it started and removes throw-away data', async () => {
    const dataDir = infra.started.postgres?.dataDir ?? '';
    const { natsUrl, pgServerUrl } = infra;
    await infra.stop();
    expect((await probeNats(natsUrl, 500)).ok).toBe(false);
    expect((await probePostgres(pgServerUrl, 500)).ok).toBe(false);
    expect(existsSync(dataDir)).toBe(false);
  });
});
