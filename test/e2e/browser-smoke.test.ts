/**
 * Real Chromium (Debian's, driven by playwright-core; never a browser download) loads the
 * page the gateway serves; the page asks the gateway for /api/status, which pings every
 * service over NATS — the full chain: browser → gateway → NATS → rooms, media, events.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { artifactDir, startPlatform, uniquePrefix, type Platform } from '@switchboard/devstack';
import { SERVICE_NAMES } from '@switchboard/protocol';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';

let platform: Platform;
let browser: Browser;

beforeAll(async () => {
  platform = await startPlatform({
    natsUrl: inject('natsUrl'),
    subjectPrefix: uniquePrefix('e2e'),
    pgServerUrl: inject('pgServerUrl'),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser.close();
  await platform.stop();
});

describe('browser smoke', () => {
  it('loads the gateway status page and sees every service answer over NATS', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });

    // On the gateway's ops port (not the public one).
    const res = await page.goto(`${platform.get('gateway').opsUrl}/`);
    expect(res?.status()).toBe(200);
    await expect(page.title()).resolves.toBe('Switchboard');
    await page.waitForSelector('body[data-state="ready"]', { timeout: 15_000 });

    const rows: [string | null, string | null][] = [];
    for (const row of await page.locator('#status tbody tr').all()) {
      rows.push([
        await row.getAttribute('data-service'),
        await row.locator('td').nth(1).textContent(),
      ]);
    }
    expect(rows).toEqual(SERVICE_NAMES.map((s) => [s, 'ready']));
    await page.screenshot({ path: join(artifactDir('e2e'), 'gateway-status.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});
