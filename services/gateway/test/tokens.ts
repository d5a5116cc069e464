/**
 * The keys, verifiers and helpers of the token verifier's tests (auth*.test.ts): RSA key
 * pairs named by their RFC 7638 thumbprint, the verifiers of HS256 only, RS256 only and both
 * (`useVerifiers()` makes them in the calling file's beforeAll), `rejects` (AUTH_FAILED that
 * names no key) and tokens made by hand.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { beforeAll, expect } from 'vitest';
import { base64url, calculateJwkThumbprint, exportJWK } from 'jose';
import { ErrorCodes, ProtocolError } from '@switchboard/protocol';
import { DEV_HS256_SECRET } from '@switchboard/devstack';
import { TokenVerifier, type TokenVerifierConfig } from '../src/auth.ts';

export interface RsaPair {
  privateKey: KeyObject;
  publicPem: string;
  kid: string;
}

export async function rsaPair(): Promise<RsaPair> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { privateKey, publicPem, kid };
}

export const base = { audience: 'switchboard', clockToleranceS: 5 } satisfies TokenVerifierConfig;
export const claims = { sub: 'alice', rooms: ['room-1'] };

export let rsa1: RsaPair;
export let rsa2: RsaPair;
export let hsOnly: TokenVerifier;
export let rsOnly: TokenVerifier;
export let both: TokenVerifier;

/** Two RSA pairs and the three verifiers, made once before the calling file's tests. */
export function useVerifiers(): void {
  beforeAll(async () => {
    rsa1 = await rsaPair();
    rsa2 = await rsaPair();
    hsOnly = await TokenVerifier.create({ ...base, hs256Secret: DEV_HS256_SECRET });
    rsOnly = await TokenVerifier.create({
      ...base,
      rs256PublicKeys: `${rsa1.publicPem}\n${rsa2.publicPem}`,
    });
    both = await TokenVerifier.create({
      ...base,
      hs256Secret: DEV_HS256_SECRET,
      rs256PublicKeys: rsa1.publicPem,
    });
  });
}

/** Expect AUTH_FAILED whose message contains `reason`, and nothing of the keys. */
export async function rejects(
  verifier: TokenVerifier,
  token: string,
  reason: string,
): Promise<void> {
  const err: unknown = await verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProtocolError);
  const pe = err as ProtocolError;
  expect(pe.errorName).toBe('AUTH_FAILED');
  expect(pe.code).toBe(ErrorCodes.AUTH_FAILED.code);
  expect(pe.message).toContain(reason);
  expect(pe.message).not.toContain(DEV_HS256_SECRET);
  expect(pe.message).not.toContain('PUBLIC KEY');
  expect(pe.cause).toBeUndefined();
}

/** A compact JWS with any header and payload, signed (or not) by hand. */
export function handMade(header: object, payload: object, signature = ''): string {
  const enc = (o: object): string => base64url.encode(JSON.stringify(o));
  return `${enc(header)}.${enc(payload)}.${signature}`;
}

export const inOneHour = (): number => Math.floor(Date.now() / 1000) + 3600;
