/**
 * Security headers on every HTTP response of the gateway (the demo app, its script and
 * styles, /dev/token, errors) and of its ops server (the status page):
 *
 * - Content-Security-Policy: scripts, styles, images and fonts from this origin only (the
 *   pages have no inline script or style), connections to this origin and to WebSocket
 *   URLs (the demo fails over to other gateways, which may have other origins), no plugins,
 *   no <base>, forms to this origin, and never framed (`frame-ancestors 'none'`).
 * - X-Content-Type-Options: nosniff; X-Frame-Options: DENY (older browsers);
 *   Referrer-Policy: no-referrer; Cross-Origin-Opener-Policy: same-origin;
 *   Cross-Origin-Resource-Policy: same-origin.
 *
 * The WebSocket upgrade of /api is not an ordinary response: browsers ignore these there.
 */
import type { FastifyInstance } from 'fastify';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "font-src 'self'",
  "connect-src 'self' ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** Add the security headers to every response `app` sends (before its plugins register). */
export function securityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', async (_req, reply) => {
    // onRequest, not onSend: errors answered before a route runs (404, 400) get them too.
    void reply.headers(SECURITY_HEADERS);
  });
}
