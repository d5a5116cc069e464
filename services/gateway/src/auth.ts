/**
 * Verification of the bearer token of `join`: a JWT signed with HS256 (a shared secret) or
 * RS256 (one of a set of RSA public keys). The algorithm is pinned to the key it is checked
 * with — an HS256 token is only ever checked with the secret, an RS256 token only with the
 * RSA keys — so a token cannot choose how it is verified (no `none`, no RS/HS confusion).
 */
import { calculateJwkThumbprint, decodeProtectedHeader, errors, importSPKI, jwtVerify } from 'jose';
import type { CryptoKey, JWTPayload, JWTVerifyOptions } from 'jose';
import { ProtocolError, formatIssues, roomGranted, tokenClaims } from '@switchboard/protocol';
import { ConfigError } from '@switchboard/service';

/** Longest token accepted; anything longer is rejected before it is parsed. */
export const MAX_TOKEN_LENGTH = 8192;
/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash (256 bits). */
const MIN_HS256_SECRET_LENGTH = 32;
const MIN_RSA_MODULUS_BITS = 2048;

export interface TokenVerifierConfig {
  /** AUTH_HS256_SECRET: the shared secret of HS256 tokens. */
  hs256Secret?: string | undefined;
  /** AUTH_RS256_PUBLIC_KEYS: one or more PEM `PUBLIC KEY` (SPKI) blocks, concatenated. */
  rs256PublicKeys?: string | undefined;
  /** AUTH_AUDIENCE: the `aud` every token must include. */
  audience: string;
  /** AUTH_ISSUER: the `iss` every token must have, when set. */
  issuer?: string | undefined;
  /** AUTH_CLOCK_TOLERANCE_S: clock skew allowed on `exp` and `nbf`, seconds. */
  clockToleranceS: number;
}

/** What a verified token allows. */
export interface Grant {
  /** The token's `sub`. */
  userId: string;
  /** The token's `rooms`: exact room ids or `prefix*` patterns (see roomGranted). */
  rooms: readonly string[];
  /** The token's `name`, when it has one. */
  name?: string;
  /** When the token expires (its `exp`), milliseconds since the epoch. */
  expiresAt?: number;
}

interface RsaKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` a token names it by. */
  kid: string;
  key: CryptoKey;
}

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----\r?\n?([A-Za-z0-9+/=\s]+?)-----END PUBLIC KEY-----/g;

function fail(reason: string): ProtocolError {
  return new ProtocolError('AUTH_FAILED', reason);
}

/** Parse the PEM text of AUTH_RS256_PUBLIC_KEYS; throws ConfigError when it does not parse. */
async function importRsaKeys(pem: string): Promise<RsaKey[]> {
  const bad = (message: string): ConfigError =>
    new ConfigError([{ variable: 'AUTH_RS256_PUBLIC_KEYS', message }]);
  const blocks = [...pem.matchAll(PEM_BLOCK)].map((m) => m[0]);
  if (blocks.length === 0) throw bad('contains no PEM "PUBLIC KEY" block');
  if (pem.replace(PEM_BLOCK, '').trim() !== '') {
    throw bad('contains text outside its PEM "PUBLIC KEY" blocks');
  }
  const keys: RsaKey[] = [];
  for (const [i, block] of blocks.entries()) {
    let key: CryptoKey;
    try {
      key = await importSPKI(block, 'RS256', { extractable: true });
    } catch {
      throw bad(`key ${i + 1} of ${blocks.length} is not an RSA public key in SPKI PEM`);
    }
    const bits = (key.algorithm as { modulusLength?: unknown }).modulusLength;
    if (typeof bits !== 'number' || bits < MIN_RSA_MODULUS_BITS) {
      throw bad(`key ${i + 1} of ${blocks.length} is shorter than ${MIN_RSA_MODULUS_BITS} bits`);
    }
    const kid = await calculateJwkThumbprint(key, 'sha256');
    if (!keys.some((k) => k.kid === kid)) keys.push({ kid, key });
  }
  return keys;
}

/** The short, key-free reason a jose error stands for. */
function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `token has no ${err.claim}`;
    switch (err.claim) {
      case 'nbf':
        return err.reason === 'check_failed' ? 'token not yet valid' : 'invalid nbf';
      case 'aud':
        return 'wrong audience';
      case 'iss':
        return 'wrong issuer';
      default:
        return `invalid ${err.claim}`;
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return 'malformed token';
  }
  return 'token rejected';
}

/**
 * Verifies bearer tokens against the configured keys and turns their claims into a Grant.
 * Every rejection is a ProtocolError AUTH_FAILED with a short reason.
 */
export class TokenVerifier {
  readonly #hs256: Uint8Array | undefined;
  readonly #rs256: readonly RsaKey[];
  readonly #options: JWTVerifyOptions;

  private constructor(
    hs256: Uint8Array | undefined,
    rs256: readonly RsaKey[],
    options: JWTVerifyOptions,
  ) {
    this.#hs256 = hs256;
    this.#rs256 = rs256;
    this.#options = options;
  }

  /**
   * Import the keys. Throws ConfigError when neither key source is set, the secret is too
   * short or the PEM text does not parse.
   */
  static async create(cfg: TokenVerifierConfig): Promise<TokenVerifier> {
    const secret = cfg.hs256Secret === '' ? undefined : cfg.hs256Secret;
    const pem = cfg.rs256PublicKeys?.trim() === '' ? undefined : cfg.rs256PublicKeys;
    if (secret === undefined && pem === undefined) {
      throw new ConfigError([
        {
          variable: 'AUTH_HS256_SECRET',
          message: 'is required unless AUTH_RS256_PUBLIC_KEYS is set (no key to verify tokens)',
        },
      ]);
    }
    if (secret !== undefined && secret.length < MIN_HS256_SECRET_LENGTH) {
      throw new ConfigError([
        {
          variable: 'AUTH_HS256_SECRET',
          message: `must be at least ${MIN_HS256_SECRET_LENGTH} characters`,
        },
      ]);
    }
    const rs256 = pem === undefined ? [] : await importRsaKeys(pem);
    return new TokenVerifier(
      secret === undefined ? undefined : new TextEncoder().encode(secret),
      rs256,
      {
        audience: cfg.audience,
        ...(cfg.issuer === undefined || cfg.issuer === '' ? {} : { issuer: cfg.issuer }),
        clockTolerance: cfg.clockToleranceS,
        requiredClaims: ['exp'],
      },
    );
  }

  /** Key ids (RFC 7638 thumbprints) of the RS256 keys, in configuration order. */
  get rs256KeyIds(): readonly string[] {
    return this.#rs256.map((k) => k.kid);
  }

  /** Verify a bearer token. Throws ProtocolError AUTH_FAILED when it is not acceptable. */
  async verify(token: string): Promise<Grant> {
    if (token.length > MAX_TOKEN_LENGTH) throw fail('token too long');
    // A compact JWS has three parts (decodeProtectedHeader would also read a JWE's five).
    if (token.split('.').length !== 3) throw fail('malformed token');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw fail('malformed token');
    }

    let payload: JWTPayload;
    if (header.alg === 'HS256' && this.#hs256 !== undefined) {
      payload = await this.#verifyHs256(token, this.#hs256);
    } else if (header.alg === 'RS256' && this.#rs256.length > 0) {
      payload = await this.#verifyRs256(token, header.kid);
    } else {
      throw fail('algorithm not allowed');
    }

    const parsed = tokenClaims.parse(payload);
    if (!parsed.ok) throw fail(`invalid claims: ${formatIssues(parsed.issues)}`);
    const claims = parsed.value;
    const grant: Grant = { userId: claims.sub, rooms: claims.rooms };
    if (claims.name !== undefined) grant.name = claims.name;
    if (typeof payload.exp === 'number') grant.expiresAt = payload.exp * 1000;
    return grant;
  }

  /** Whether a grant lets its holder join `roomId`. */
  mayJoin(grant: Grant, roomId: string): boolean {
    return roomGranted(grant.rooms, roomId);
  }

  async #verifyRs256(token: string, kid: unknown): Promise<JWTPayload> {
    if (kid !== undefined && typeof kid !== 'string') throw fail('malformed token');
    const candidates = kid === undefined ? this.#rs256 : this.#rs256.filter((k) => k.kid === kid);
    if (candidates.length === 0) throw fail('unknown key id');
    for (const { key } of candidates) {
      try {
        const { payload } = await jwtVerify(token, key, {
          ...this.#options,
          algorithms: ['RS256'],
        });
        return payload;
      } catch (err) {
        // Without a kid every key is tried: only a bad signature moves on to the next one.
        if (err instanceof errors.JWSSignatureVerificationFailed) continue;
        throw fail(reasonOf(err));
      }
    }
    throw fail('bad signature');
  }

  async #verifyHs256(token: string, secret: Uint8Array): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, secret, {
        ...this.#options,
        algorithms: ['HS256'],
      });
      return payload;
    } catch (err) {
      throw fail(reasonOf(err));
    }
  }
}
