/**
 * The token verifier's configuration (TokenVerifier.create): it needs a key, an HS256 secret
 * of 32 characters at least, RS256 public keys as PEM text that parses into RSA keys of 2048
 * bits or more (CRLF line ends and blank lines around the blocks are fine). Each fault is a
 * ConfigError that names its variable.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@switchboard/service';
import { DEV_HS256_SECRET } from '@switchboard/devstack';
import { TokenVerifier, type TokenVerifierConfig } from '../src/auth.ts';
import { base, rsa1, rsa2, useVerifiers } from './tokens.ts';

useVerifiers();

describe('TokenVerifier.create', () => {
  async function configError(cfg: TokenVerifierConfig): Promise<ConfigError> {
    const err: unknown = await TokenVerifier.create(cfg).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }

  it('needs a key', async () => {
    const err = await configError(base);
    expect(err.issues[0]?.variable).toBe('AUTH_HS256_SECRET');
    await configError({ ...base, hs256Secret: '', rs256PublicKeys: '  \n' });
  });

  it('rejects a secret shorter than 32 characters', async () => {
    const err = await configError({ ...base, hs256Secret: 'short' });
    expect(err.issues[0]?.variable).toBe('AUTH_HS256_SECRET');
    expect(err.message).not.toContain('short"');
  });

  it('rejects PEM text that does not parse', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const smallPem = small.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const rsaPkcs1 = rsa1.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const bodyOf = (pem: string): string => pem.split('\n').slice(1, -2).join('\n');
    const bad = [
      'not a pem',
      '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      `-----BEGIN PUBLIC KEY-----\n${bodyOf(rsa1.publicPem).slice(0, 100)}\n-----END PUBLIC KEY-----\n`,
      `${rsa1.publicPem}garbage\n`,
      `${rsa1.publicPem}-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n`,
      ecPem,
      smallPem,
      rsaPkcs1,
    ];
    for (const rs256PublicKeys of bad) {
      const err = await configError({ ...base, hs256Secret: DEV_HS256_SECRET, rs256PublicKeys });
      expect(err.issues.map((i) => i.variable)).toEqual(['AUTH_RS256_PUBLIC_KEYS']);
    }
  });

  it('accepts PEM blocks with CRLF line ends and surrounding blank lines', async () => {
    const pem = `\n${rsa1.publicPem.replaceAll('\n', '\r\n')}\r\n\r\n${rsa2.publicPem}\n`;
    const v = await TokenVerifier.create({ ...base, rs256PublicKeys: pem });
    expect(v.rs256KeyIds).toEqual([rsa1.kid, rsa2.kid]);
  });
});
