/**
 * The demo web app (services/gateway/web, built on the client SDK) as the browser tests drive
 * it, whichever browser and driver runs it: Chromium through playwright-core, Firefox through
 * puppeteer-core (WebDriver BiDi). A page is reached only through `window.demo`, the app's own
 * test surface (state() and the actions its buttons run).
 */
import { expect } from 'vitest';
import type { DemoApi, DemoState } from '../../services/gateway/web/demo.ts';

export type { DemoState };

/** window.demo's actions (each rejects with the error the page shows). */
export type DemoActions = Omit<DemoApi, 'state' | 'join'>;

type DemoGlobal = { demo: DemoApi };

/** The little of a browser page the tests need, whichever driver opened it. */
export interface PageDriver {
  /** Run `fn(arg)` in the page (both are serialised: `fn` closes over nothing). */
  evaluate<A, T>(fn: (arg: A) => T | Promise<T>, arg: A): Promise<T>;
  screenshot(path: string): Promise<void>;
}

export const MEDIA_TIMEOUT_MS = 20_000;

const CSP_EVAL_REFUSED = /^Content-Security-Policy: .*blocked a JavaScript eval .*'unsafe-eval'/;

/** Poll `f` until it gives a value (not undefined or false); fail with `what` after the time. */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined | false>,
  timeoutMs = MEDIA_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class DemoPage {
  readonly label: string;
  readonly driver: PageDriver;
  /** Uncaught page errors and console errors, as the driver reported them. */
  readonly errors: string[];

  constructor(label: string, driver: PageDriver, errors: string[]) {
    this.label = label;
    this.driver = driver;
    this.errors = errors;
  }

  /**
   * The page once its script has run (`window.demo` is there). Polled with evaluate: a
   * driver's own wait may compile its predicate in the page, which the app's CSP refuses.
   */
  static async ready(label: string, driver: PageDriver, errors: string[]): Promise<DemoPage> {
    await until(`${label}'s page to load`, () =>
      driver.evaluate(() => 'demo' in globalThis, undefined),
    );
    return new DemoPage(label, driver, errors);
  }

  async state(): Promise<DemoState> {
    return await this.driver.evaluate(
      () => (globalThis as unknown as DemoGlobal).demo.state(),
      undefined,
    );
  }

  /** Run one of window.demo's actions in the page. */
  async act<K extends keyof DemoActions>(
    action: K,
    ...args: Parameters<DemoActions[K]>
  ): Promise<void> {
    await this.driver.evaluate(
      async ([a, xs]) => {
        const demo = (globalThis as unknown as DemoGlobal).demo;
        await (demo[a] as (...v: unknown[]) => Promise<void>)(...xs);
      },
      [action, args] as const,
    );
  }

  /** The session is connected (the page's own `data-state`). */
  async connected(timeoutMs = MEDIA_TIMEOUT_MS): Promise<void> {
    await until(
      `${this.label} connected`,
      () => this.driver.evaluate(() => document.body.dataset['state'] === 'connected', undefined),
      timeoutMs,
    );
  }

  /** The camera video of the member named `from` on this page. */
  async videoOf(from: string): Promise<DemoState['tiles'][number]['videos'][number] | undefined> {
    const tile = (await this.state()).tiles.find((t) => t.userId === from);
    return tile?.videos.find((v) => v.source === 'camera');
  }

  /** Frames of `from`'s video grow by more than `min` within `windowMs` (0 when they do not). */
  async playing(from: string, min = 10, windowMs = 1500): Promise<number> {
    const start = await until(
      `${from}'s video on ${this.label}`,
      async () => (await this.videoOf(from))?.frames,
    );
    await new Promise((r) => setTimeout(r, windowMs));
    const end = (await this.videoOf(from))?.frames ?? 0;
    return end - start > min ? end - start : 0;
  }

  /** `from`'s video plays on this page (more than 10 frames within a second), soon. */
  async playingSoon(from: string): Promise<void> {
    await until(
      `${from}'s video playing on ${this.label}`,
      async () => (await this.playing(from, 10, 1000)) > 0,
    );
  }

  /** Send `text` on the data channel, once it is open (SERVICE_UNAVAILABLE before). */
  async chat(text: string): Promise<void> {
    await until(`${this.label}'s data channel to open`, async () => {
      try {
        await this.act('sendChat', text);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** `text` from `from` reached this page. */
  async received(from: string, text: string): Promise<void> {
    await until(`${this.label} to get ${from}'s message`, async () =>
      (await this.state()).messages.some((m) => m.from === from && m.text === text),
    );
  }

  /**
   * Neither the page nor the driver reported an error. Two are not: the chat's tries before its
   * channel opened, and Firefox's report of the app's CSP refusing `new Function` (the SDK's
   * validators try it once, then check without it: the policy doing its job).
   */
  async expectNoErrors(): Promise<void> {
    const errors = (await this.state()).errors.filter(
      (e) => !e.startsWith('chat: SERVICE_UNAVAILABLE'),
    );
    expect(errors, this.label).toEqual([]);
    expect(
      this.errors.filter((e) => !CSP_EVAL_REFUSED.test(e)),
      this.label,
    ).toEqual([]);
  }
}
