/**
 * Bearer tokens for tests, dev tools and benchmarks: JWTs the gateway accepts when it is
 * configured with the same key (AUTH_HS256_SECRET or AUTH_RS256_PUBLIC_KEYS).
 */
import { SignJWT } from 'jose';
import type { CryptoKey, JWTPayload, KeyObject } from 'jose';
import { DEV_HS256_SECRET } from '@switchboard/protocol';

/**
 * The HS256 secret of local development (`./run start`, tests). Never use it in production:
 * it is published (libs/protocol), and a gateway refuses it unless GATEWAY_DEV_TOKENS is on.
 */
export { DEV_HS256_SECRET };

export interface MintTokenOptions {
  /** HS256 secret (default: DEV_HS256_SECRET when no privateKey is given). */
  secret?: string;
  /** RS256 private key (e.g. from jose's generateKeyPair or importPKCS8). */
  privateKey?: CryptoKey | KeyObject;
  /** `kid` header: the RFC 7638 thumbprint of the public key, for the gateway. */
  kid?: string;
  sub: string;
  /** Exact room ids, or prefixes ending with `*`. */
  rooms: string[];
  /** `aud` (default 'switchboard'). */
  aud?: string;
  iss?: string;
  /** `exp` relative to now, seconds (default 3600; negative for an expired token). */
  expiresInS?: number;
  /** `nbf` relative to now, seconds (none by default). */
  notBeforeS?: number;
  /** Default: RS256 when a privateKey is given, else HS256. */
  alg?: 'HS256' | 'RS256';
  /**
   * More claims, applied last: they may replace `sub`, `rooms` or any other claim, and an
   * `undefined` value leaves that claim out of the token.
   */
  extra?: Record<string, unknown>;
}

/** Sign a token with the given claims. */
export async function mintToken(opts: MintTokenOptions): Promise<string> {
  const alg = opts.alg ?? (opts.privateKey === undefined ? 'HS256' : 'RS256');
  let key: CryptoKey | KeyObject | Uint8Array;
  if (alg === 'HS256') {
    key = new TextEncoder().encode(opts.secret ?? DEV_HS256_SECRET);
  } else {
    if (opts.privateKey === undefined) throw new Error('mintToken: RS256 needs a privateKey');
    key = opts.privateKey;
  }
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    sub: opts.sub,
    rooms: opts.rooms,
    aud: opts.aud ?? 'switchboard',
    iat: now,
    exp: now + (opts.expiresInS ?? 3600),
  };
  if (opts.iss !== undefined) payload.iss = opts.iss;
  if (opts.notBeforeS !== undefined) payload.nbf = now + opts.notBeforeS;
  Object.assign(payload, opts.extra);
  return new SignJWT(payload)
    .setProtectedHeader({ alg, typ: 'JWT', ...(opts.kid === undefined ? {} : { kid: opts.kid }) })
    .sign(key);
}
