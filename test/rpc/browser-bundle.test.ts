/**
 * `@switchboard/rpc`'s main entry point is browser-safe: it bundles for the browser (rolldown,
 * as the SFU page is bundled) with no Node built-in and without werift, which only
 * `@switchboard/rpc/werift` brings in.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(import.meta.resolve('@switchboard/rpc'));

describe('@switchboard/rpc in a browser bundle', () => {
  it('has no Node built-in and no werift', async () => {
    const imported = new Set<string>();
    const out = await build({
      input: entry,
      platform: 'browser',
      write: false,
      logLevel: 'silent',
      output: { format: 'esm' },
      plugins: [
        {
          name: 'record-imports',
          resolveId(source) {
            imported.add(source);
            return null;
          },
        },
      ],
    });
    const chunk = out.output.find((o) => o.type === 'chunk');
    expect(chunk?.code).toContain('RpcClient');
    // The plugin saw the imports (so an empty list below means something).
    expect(imported).toContain('@switchboard/protocol');
    const forbidden = [...imported].filter((s) => s.startsWith('node:') || s.includes('werift'));
    expect(forbidden).toEqual([]);
    expect(chunk?.code).not.toMatch(/from ['"]node:/);
  });
});
