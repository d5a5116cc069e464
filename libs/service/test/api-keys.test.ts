import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadApiKeys } from '../src/index.ts';

const SECRET = 'a'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'sb-api-keys-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function issues(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('no ConfigError');
}

describe('loadApiKeys', () => {
  it('reads key:secret pairs inline and from a file', () => {
    expect(loadApiKeys({}).size).toBe(0);
    const inline = loadApiKeys({ API_KEYS: `key1:${SECRET}, key2:${SECRET}b` });
    expect([...inline]).toEqual([
      ['key1', SECRET],
      ['key2', `${SECRET}b`],
    ]);
    const file = join(dir, 'keys');
    writeFileSync(file, `key1:${SECRET}\nkey_3:${SECRET}:with:colons\n`);
    expect(loadApiKeys({ API_KEYS_FILE: file }).get('key_3')).toBe(`${SECRET}:with:colons`);
  });

  it('names the problem, never the secret', () => {
    const short = issues(() => loadApiKeys({ API_KEYS: 'key1:tooshort-secret' }));
    expect(short).toContain('key1');
    expect(short).not.toContain('tooshort');
    expect(issues(() => loadApiKeys({ API_KEYS: `no-colon-${SECRET}` }))).not.toContain(SECRET);
    expect(issues(() => loadApiKeys({ API_KEYS: `key1:${SECRET} key1:${SECRET}` }))).toContain(
      'twice',
    );
    expect(
      issues(() => loadApiKeys({ API_KEYS: `key1:${SECRET}`, API_KEYS_FILE: '/x' })),
    ).toContain('not both');
    expect(issues(() => loadApiKeys({ API_KEYS_FILE: join(dir, 'missing') }))).toContain('ENOENT');
  });
});
