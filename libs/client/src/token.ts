/**
 * The bearer token's lifetime, as the client sees it. The client never verifies a token (it
 * has no key); it reads `exp` only to refresh the token before the gateway would refuse it.
 */

/** The `exp` claim of a JWT, epoch ms; undefined when the token has none or is not a JWT. */
export function tokenExpiry(jwt: string): number | undefined {
  const payload = jwt.split('.')[1];
  if (payload === undefined || payload === '') return undefined;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const json: unknown = JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')));
    if (typeof json !== 'object' || json === null) return undefined;
    const exp = (json as Record<string, unknown>)['exp'];
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    // Not base64url JSON: an opaque token, refreshed only when a join refuses it.
    return undefined;
  }
}

/**
 * When to refresh a token expiring at `expiresAt` (epoch ms, the server's clock): `marginMs`
 * before it, but not before half of its remaining life — a token of 40 s with a margin of
 * 60 s is refreshed after 20 s, not at once (and not in a loop). `clockOffsetMs` is the
 * server's clock minus ours (from the heartbeat replies).
 */
export function refreshAt(
  expiresAt: number,
  now: number,
  marginMs: number,
  clockOffsetMs = 0,
): number {
  const localExpiry = expiresAt - clockOffsetMs;
  const remaining = localExpiry - now;
  return now + Math.max(0, remaining - marginMs, remaining / 2);
}
