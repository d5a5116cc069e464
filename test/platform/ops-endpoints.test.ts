/**
 * What operators read is off the public path: /metrics and the status page (with
 * /api/status) answer on the ops port only; /healthz and /readyz on both ports. The demo and
 * the status page send security headers (CSP without inline script or style, nosniff, no
 * framing, no referrer), and their HTML has nothing inline the CSP would block.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startPlatform, uniquePrefix, type Platform } from '@switchboard/devstack';

let platform: Platform;

beforeAll(async () => {
  platform = await startPlatform({
    natsUrl: inject('natsUrl'),
    subjectPrefix: uniquePrefix('ops'),
    pgServerUrl: inject('pgServerUrl'),
    names: ['gateway', 'events', 'api'],
  });
});

afterAll(async () => {
  await platform.stop();
});

function expectSecurityHeaders(res: Response, what: string): void {
  const csp = res.headers.get('content-security-policy') ?? '';
  expect(csp, what).toContain("script-src 'self'");
  expect(csp, what).toContain("frame-ancestors 'none'");
  expect(csp, what).toContain("object-src 'none'");
  expect(csp, what).not.toContain('unsafe-inline');
  expect(csp, what).not.toContain('unsafe-eval');
  expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
  expect(res.headers.get('referrer-policy'), what).toBe('no-referrer');
  expect(res.headers.get('x-frame-options'), what).toBe('DENY');
  expect(res.headers.get('cross-origin-opener-policy'), what).toBe('same-origin');
}

/** No inline script, no event-handler or style attribute, no inline <style>. */
function expectNothingInline(html: string, what: string): void {
  for (const tag of html.match(/<script\b[^>]*>/g) ?? []) expect(tag, what).toMatch(/\bsrc=/);
  expect(html, what).not.toMatch(/<style\b/);
  expect(html, what).not.toMatch(/\s(on[a-z]+|style)=/);
}

describe('ops endpoints and security headers', () => {
  it('serves /metrics and the status on the ops port only, probes on both', async () => {
    for (const svc of platform.services.values()) {
      expect((await fetch(`${svc.url}/metrics`)).status, svc.name).toBe(404);
      expect(await svc.metrics()).toMatch(/^sb_ready\{/m);
      for (const base of [svc.url, svc.opsUrl]) {
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        expect((await fetch(`${base}/readyz`)).status).toBe(200);
      }
    }
    const gw = platform.get('gateway');
    expect((await fetch(`${gw.url}/api/status`)).status).toBe(404);
    expect((await fetch(`${gw.url}/status.html`)).status).toBe(404);
    const status = await fetch(`${gw.opsUrl}/api/status`);
    expect(status.status).toBe(200);
    const body = (await status.json()) as {
      gateway?: { instanceId?: unknown };
      services?: { service: string; ok: boolean }[];
    };
    expect(typeof body.gateway?.instanceId).toBe('string');
    // The status pings every service: the server API answers too.
    expect(body.services?.find((s) => s.service === 'api')).toMatchObject({ ok: true });
    // The API's unknown paths are JSON 404s, like its errors, with no-store.
    const api = platform.get('api');
    const missing = await fetch(`${api.url}/metrics`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('cache-control')).toBe('no-store');
  });

  it('sends security headers with the demo, its files, errors and the status page', async () => {
    const gw = platform.get('gateway');
    const demo = await fetch(`${gw.url}/`);
    expect(demo.status).toBe(200);
    expectSecurityHeaders(demo, 'demo');
    expectNothingInline(await demo.text(), 'demo');
    for (const path of ['/dist/demo.js', '/demo.css', '/favicon.svg', '/no-such-page']) {
      expectSecurityHeaders(await fetch(`${gw.url}${path}`), path);
    }
    const page = await fetch(`${gw.opsUrl}/`);
    expect(page.status).toBe(200);
    expectSecurityHeaders(page, 'status page');
    const html = await page.text();
    expect(html).toContain('<title>Switchboard</title>');
    expectNothingInline(html, 'status page');
    expectSecurityHeaders(await fetch(`${gw.opsUrl}/status.js`), 'status.js');
  });
});
