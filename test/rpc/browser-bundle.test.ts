/**
 * `@switchboard/rpc`'s main entry point is browser-safe: it bundles for the browser (rolldown,
 * as the SFU page is bundled) with no Node built-in and without werift, which only
 * `@switchboard/rpc/werift` brings in.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { browserBundle } from '../e2e/page-server.ts';

const entry = fileURLToPath(import.meta.resolve('@switchboard/rpc'));

describe('@switchboard/rpc in a browser bundle', () => {
  it('has no Node built-in and no werift', async () => {
    const { code, imported } = await browserBundle(entry);
    expect(code).toContain('RpcClient');
    // The plugin saw the imports (so an empty list below means something).
    expect(imported).toContain('@switchboard/protocol');
    const forbidden = [...imported].filter((s) => s.startsWith('node:') || s.includes('werift'));
    expect(forbidden).toEqual([]);
    expect(code).not.toMatch(/from ['"]node:/);
  });
});
