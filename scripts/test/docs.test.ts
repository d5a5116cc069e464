import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README, renderReadme } from '../docs.ts';

describe('README', () => {
  it('has the configuration and error tables of libs/protocol (run ./run docs when this fails)', async () => {
    const readme = readFileSync(README, 'utf8');
    expect(await renderReadme(readme)).toBe(readme);
  });
});
