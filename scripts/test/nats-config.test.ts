/**
 * `./run nats-config`: what it prints is a configuration nats-server accepts, once the
 * secrets it names are in the server's environment (and none is in the file).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '@nats-io/nkeys';
import { NODE, ROOT, natsServerBinary } from '@switchboard/devstack';
import { NATS_IDENTITIES } from '@switchboard/protocol';
import { natsVariable } from '../nats-config.ts';

const execFileP = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-nats-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function render(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(NODE, [join(ROOT, 'scripts/nats-config.ts'), ...args]);
  return stdout;
}

/** `nats-server -t`: whether the server accepts the configuration (and what it says). */
async function check(config: string, env: Record<string, string>): Promise<string> {
  const file = join(dir, 'nats.conf');
  await writeFile(file, config);
  const { stdout, stderr } = await execFileP(natsServerBinary(), ['-t', '-c', file], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  return `${stdout}${stderr}`;
}

describe('./run nats-config', () => {
  it('passwords: every identity, each password a variable of the server environment', async () => {
    const config = await render('--prefix', 'acme.prod');
    for (const identity of NATS_IDENTITIES) {
      expect(config).toContain(
        `user: "${identity}", password: $${natsVariable(identity, 'PASSWORD')}`,
      );
    }
    expect(config).toContain('"acme.prod.rooms.rpc.createRoom"');
    const env = Object.fromEntries(
      NATS_IDENTITIES.map((i) => [natsVariable(i, 'PASSWORD'), `pw-${i}`]),
    );
    expect(await check(config, env)).toMatch(/is valid/);
    await expect(check(config, {})).rejects.toThrow(/SB_NATS_GATEWAY_PASSWORD/);
  });

  it('NKeys: public keys as variables; nsc: the commands of operator mode', async () => {
    const config = await render('--prefix', 'sb', '--auth', 'nkey');
    const env = Object.fromEntries(
      NATS_IDENTITIES.map((i) => [natsVariable(i, 'NKEY'), createUser().getPublicKey()]),
    );
    expect(await check(config, env)).toMatch(/is valid/);
    const nsc = await render('--auth', 'nsc', '--account', 'SB');
    expect(nsc).toContain("nsc add user --account 'SB' --name gateway");
    expect(nsc).toContain('_INBOX.sb.gateway.>');
    await expect(render('--prefix', 'a..b')).rejects.toThrow(/not a subject prefix/);
  });
});
