/**
 * Token verification with keys from a JWKS (AUTH_JWKS_URL) served by a local HTTP server:
 * RSA and EC keys used as served and a rotation followed without a restart, unknown kids
 * fetched at most once per cooldown, static RS256 keys beside it; and, in the same describe,
 * the maximum token lifetime (AUTH_MAX_TOKEN_TTL_S) and the grants claim made session grants.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SignJWT, exportJWK } from 'jose';
import { DEV_HS256_SECRET, mintToken } from '@switchboard/devstack';
import { TokenVerifier } from '../src/auth.ts';
import { base, claims, hsOnly, rejects, rsa1, useVerifiers } from './tokens.ts';

useVerifiers();

describe('a JWKS (AUTH_JWKS_URL)', () => {
  /** A JWKS served from a local HTTP server; `keys` is what it serves now. */
  async function jwksServer(): Promise<{
    url: string;
    keys: object[];
    fetches: number;
    close(): Promise<void>;
  }> {
    const state = { keys: [] as object[], fetches: 0 };
    const server = createServer((_req, res) => {
      state.fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: state.keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${String(port)}/.well-known/jwks.json`,
      get keys() {
        return state.keys;
      },
      set keys(k: object[]) {
        state.keys = k;
      },
      get fetches() {
        return state.fetches;
      },
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) =>
          server.close(() => {
            resolve();
          }),
        );
      },
    };
  }

  async function jwk(pair: { publicKey: KeyObject }, kid: string, alg: string): Promise<object> {
    return { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  }

  const sign = async (key: KeyObject, kid: string, alg: string, extra: object = {}) =>
    await new SignJWT({ ...claims, ...extra })
      .setProtectedHeader({ alg, kid })
      .setAudience('switchboard')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key);

  it('verifies with the served keys and follows a rotation without a restart', async () => {
    const jwks = await jwksServer();
    try {
      const rsaA = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const ecB = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      jwks.keys = [await jwk(rsaA, 'key-a', 'RS256')];
      const v = await TokenVerifier.create({ ...base, jwksUrl: jwks.url, jwksCooldownMs: 1 });
      expect((await v.verify(await sign(rsaA.privateKey, 'key-a', 'RS256'))).userId).toBe('alice');
      expect(jwks.fetches).toBe(1);
      // Cached: no fetch for a known kid.
      await v.verify(await sign(rsaA.privateKey, 'key-a', 'RS256'));
      expect(jwks.fetches).toBe(1);

      // The provider rotates: key-b (EC) is added, key-a retired.
      jwks.keys = [await jwk(ecB, 'key-b', 'ES256')];
      await new Promise((r) => setTimeout(r, 5));
      const grant = await v.verify(await sign(ecB.privateKey, 'key-b', 'ES256'));
      expect(grant.userId).toBe('alice');
      expect(jwks.fetches).toBe(2);
      // A token of the retired key, after one more fetch: refused.
      await new Promise((r) => setTimeout(r, 5));
      await rejects(v, await sign(rsaA.privateKey, 'key-a', 'RS256'), 'unknown key id');
      // A key the JWKS never had, and HS256 (no secret configured): refused.
      const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await rejects(v, await sign(stranger.privateKey, 'key-x', 'RS256'), 'unknown key id');
      const hs = await mintToken({ sub: 'alice', rooms: ['room-1'] });
      await rejects(v, hs, 'algorithm not allowed');
    } finally {
      await jwks.close();
    }
  });

  it('fetches at most once per cooldown for unknown kids (a flood of bad kids costs one fetch)', async () => {
    const jwks = await jwksServer();
    try {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      jwks.keys = [await jwk(rsa, 'key-a', 'RS256')];
      const v = await TokenVerifier.create({ ...base, jwksUrl: jwks.url, jwksCooldownMs: 60_000 });
      await v.verify(await sign(rsa.privateKey, 'key-a', 'RS256'));
      for (let i = 0; i < 20; i++) {
        await rejects(v, await sign(rsa.privateKey, `bad-${String(i)}`, 'RS256'), 'unknown key id');
      }
      expect(jwks.fetches).toBeLessThanOrEqual(2);
    } finally {
      await jwks.close();
    }
  });

  it('static RS256 keys and the JWKS work side by side', async () => {
    const jwks = await jwksServer();
    try {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      jwks.keys = [await jwk(ec, 'remote', 'ES256')];
      const v = await TokenVerifier.create({
        ...base,
        rs256PublicKeys: rsa1.publicPem,
        jwksUrl: jwks.url,
      });
      expect((await v.verify(await sign(ec.privateKey, 'remote', 'ES256'))).userId).toBe('alice');
      const rs = await mintToken({
        sub: 'alice',
        rooms: ['room-1'],
        privateKey: rsa1.privateKey,
        kid: rsa1.kid,
      });
      expect((await v.verify(rs)).userId).toBe('alice');
    } finally {
      await jwks.close();
    }
  });

  it('refuses a token living longer than the maximum TTL', async () => {
    const v = await TokenVerifier.create({
      ...base,
      hs256Secret: DEV_HS256_SECRET,
      maxTokenTtlS: 600,
    });
    expect((await v.verify(await mintToken({ ...claims, expiresInS: 600 }))).userId).toBe('alice');
    await rejects(v, await mintToken({ ...claims, expiresInS: 601 }), 'longer than 600');
  });

  it('turns the grants claim into the session grants, defaults where silent', async () => {
    const g = await hsOnly.verify(
      await mintToken({
        ...claims,
        extra: { grants: { canPublishSources: ['microphone'], hidden: true } },
      }),
    );
    expect(g.grants).toEqual({
      publish: false,
      sources: ['microphone'],
      subscribe: true,
      data: false,
      hidden: true,
      role: 'member',
    });
    const d = await hsOnly.verify(await mintToken(claims));
    expect(d.grants).toMatchObject({ publish: true, subscribe: true, data: true, role: 'member' });
    await rejects(
      hsOnly,
      await mintToken({ ...claims, extra: { grants: { role: 'admin' } } }),
      'invalid claims',
    );
  });
});
