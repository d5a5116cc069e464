import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NATS_CONF, README, renderReadme } from '../docs.ts';
import { natsConfig } from '../nats-config.ts';

describe('README', () => {
  it('has the configuration and error tables of libs/protocol (run ./run docs when this fails)', async () => {
    const readme = readFileSync(README, 'utf8');
    expect(await renderReadme(readme)).toBe(readme);
  });

  it('ships the NATS server configuration of the default prefix (run ./run docs when this fails)', () => {
    expect(readFileSync(NATS_CONF, 'utf8')).toBe(natsConfig('sb', 'password'));
  });
});
