/**
 * The two browser engines of the suite, as Debian packages them (never a browser download):
 * Chromium (`chromium`) driven by playwright-core over CDP, Firefox ESR (`firefox-esr`) driven
 * by puppeteer-core over WebDriver BiDi. Both headless, with fake camera and microphone and no
 * permission prompts; the demo app opens in either as a DemoPage.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser as Chromium } from 'playwright-core';
import puppeteer, { type Browser as Firefox } from 'puppeteer-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';
import { DemoPage, type PageDriver } from './demo-page.ts';

export const FIREFOX_PATH = process.env['FIREFOX_PATH'] ?? '/usr/bin/firefox-esr';

/**
 * Firefox's preferences for a test run:
 * - fake devices, no prompt, sound allowed to start without a user gesture;
 * - no network of its own at start (updates, telemetry, safe browsing, captive portal).
 */
const FIREFOX_PREFS: Record<string, unknown> = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'app.update.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};

export async function launchChromium(args: string[] = []): Promise<Chromium> {
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...args],
  });
}

export async function launchFirefox(): Promise<Firefox> {
  if (!existsSync(FIREFOX_PATH)) {
    throw new Error(
      `${FIREFOX_PATH} not found: Debian package firefox-esr (./run test installs it)`,
    );
  }
  return await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX_PATH,
    headless: true,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
}

/** Open `url` in a new Chromium page; its page and console errors are collected. */
export async function openInChromium(
  browser: Chromium,
  url: string,
  label: string,
): Promise<DemoPage> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  const res = await page.goto(url);
  if (res?.status() !== 200) throw new Error(`${url}: HTTP ${String(res?.status())}`);
  const driver: PageDriver = {
    evaluate: async (fn, arg) =>
      // playwright's own type of a page function unboxes handles; these args are plain data.
      await page.evaluate(fn as (a: unknown) => never, arg),
    screenshot: async (path) => {
      await page.screenshot({ path });
    },
  };
  return await DemoPage.ready(label, driver, errors);
}

/** Open `url` in a new Firefox page; its page and console errors are collected. */
export async function openInFirefox(
  browser: Firefox,
  url: string,
  label: string,
): Promise<DemoPage> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 700 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e instanceof Error ? e.message : String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  const res = await page.goto(url);
  if (res?.status() !== 200) throw new Error(`${url}: HTTP ${String(res?.status())}`);
  const driver: PageDriver = {
    evaluate: async (fn, arg) => (await page.evaluate(fn as (a: unknown) => unknown, arg)) as never,
    screenshot: async (path) => {
      await page.screenshot({ path });
    },
  };
  return await DemoPage.ready(label, driver, errors);
}
