/**
 * Bearer-token verification of `join`: HS256 and RS256 with pinned algorithms, the key
 * chosen by `kid` (RFC 7638 thumbprint) or tried in turn, the registered claims (`exp`
 * required, `nbf`, `aud`, `iss`) and Switchboard's own (`sub`, `rooms`, `name`). Every
 * rejection is AUTH_FAILED and never names the key. The verifier's configuration is
 * auth-create.test.ts; keys from a JWKS, auth-jwks.test.ts.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SignJWT, base64url } from 'jose';
import { ProtocolError } from '@switchboard/protocol';
import { DEV_HS256_SECRET, mintToken } from '@switchboard/devstack';
import { MAX_TOKEN_LENGTH, TokenVerifier } from '../src/auth.ts';
import {
  base,
  both,
  claims,
  handMade,
  hsOnly,
  inOneHour,
  rejects,
  rsOnly,
  rsa1,
  rsa2,
  rsaPair,
  useVerifiers,
} from './tokens.ts';

useVerifiers();

describe('valid tokens', () => {
  it('accepts an HS256 token and returns its grant', async () => {
    const before = Date.now();
    const token = await mintToken({ ...claims, extra: { name: 'Alice', team: 'blue' } });
    const grant = await hsOnly.verify(token);
    expect(grant).toMatchObject({ userId: 'alice', rooms: ['room-1'], name: 'Alice' });
    expect(grant.expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3_600_000);
    expect(grant.expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(await both.verify(token)).toMatchObject({ userId: 'alice' });
  });

  it('leaves name out when the token has none', async () => {
    const grant = await hsOnly.verify(await mintToken(claims));
    expect(grant).not.toHaveProperty('name');
  });

  it('names its RS256 keys by RFC 7638 thumbprint, in order', () => {
    expect(rsOnly.rs256KeyIds).toEqual([rsa1.kid, rsa2.kid]);
  });

  it('accepts an RS256 token whose kid names one of two keys', async () => {
    for (const pair of [rsa1, rsa2]) {
      const token = await mintToken({ ...claims, privateKey: pair.privateKey, kid: pair.kid });
      expect(await rsOnly.verify(token)).toMatchObject({ userId: 'alice', rooms: ['room-1'] });
    }
  });

  it('tries every key for an RS256 token without kid', async () => {
    for (const pair of [rsa1, rsa2]) {
      const token = await mintToken({ ...claims, privateKey: pair.privateKey });
      expect(await rsOnly.verify(token)).toMatchObject({ userId: 'alice' });
    }
    const other = await rsaPair();
    await rejects(
      rsOnly,
      await mintToken({ ...claims, privateKey: other.privateKey }),
      'bad signature',
    );
  });

  it('accepts an audience array that includes the configured audience', async () => {
    const token = await mintToken({ ...claims, extra: { aud: ['other', 'switchboard'] } });
    expect(await hsOnly.verify(token)).toMatchObject({ userId: 'alice' });
  });

  it('allows the configured clock tolerance on exp and nbf', async () => {
    expect(await hsOnly.verify(await mintToken({ ...claims, expiresInS: -2 }))).toMatchObject({
      userId: 'alice',
    });
    expect(await hsOnly.verify(await mintToken({ ...claims, notBeforeS: 2 }))).toMatchObject({
      userId: 'alice',
    });
  });

  it('accepts the configured issuer', async () => {
    const v = await TokenVerifier.create({ ...base, hs256Secret: DEV_HS256_SECRET, issuer: 'idp' });
    expect(await v.verify(await mintToken({ ...claims, iss: 'idp' }))).toMatchObject({
      userId: 'alice',
    });
  });
});

describe('rejected tokens', () => {
  it('rejects an RS256 token whose kid names no configured key', async () => {
    const token = await mintToken({ ...claims, privateKey: rsa1.privateKey, kid: 'not-a-key' });
    await rejects(rsOnly, token, 'unknown key id');
  });

  it('rejects an RS256 token whose kid names a different key than signed it', async () => {
    const token = await mintToken({ ...claims, privateKey: rsa1.privateKey, kid: rsa2.kid });
    await rejects(rsOnly, token, 'bad signature');
  });

  it('rejects a token with a non-string kid', async () => {
    const token = await new SignJWT({ ...claims, aud: 'switchboard', exp: inOneHour() })
      .setProtectedHeader({ alg: 'RS256', kid: 7 } as unknown as { alg: string })
      .sign(rsa1.privateKey);
    await rejects(rsOnly, token, 'malformed token');
  });

  it('rejects an expired token', async () => {
    await rejects(hsOnly, await mintToken({ ...claims, expiresInS: -60 }), 'token expired');
    const rs = await mintToken({ ...claims, privateKey: rsa1.privateKey, expiresInS: -60 });
    await rejects(rsOnly, rs, 'token expired');
  });

  it('rejects a token that is not valid yet (nbf)', async () => {
    await rejects(hsOnly, await mintToken({ ...claims, notBeforeS: 60 }), 'token not yet valid');
  });

  it('rejects a token without exp', async () => {
    const token = await mintToken({ ...claims, extra: { exp: undefined } });
    await rejects(hsOnly, token, 'token has no exp');
    const rs = await mintToken({
      ...claims,
      privateKey: rsa2.privateKey,
      extra: { exp: undefined },
    });
    await rejects(rsOnly, rs, 'token has no exp');
  });

  it('rejects a non-numeric exp', async () => {
    await rejects(
      hsOnly,
      await mintToken({ ...claims, extra: { exp: 'tomorrow' } }),
      'invalid exp',
    );
  });

  it('rejects a token for another audience, or none', async () => {
    await rejects(hsOnly, await mintToken({ ...claims, aud: 'elsewhere' }), 'wrong audience');
    await rejects(hsOnly, await mintToken({ ...claims, extra: { aud: undefined } }), 'no aud');
  });

  it('rejects a token from another issuer, or none, when an issuer is configured', async () => {
    const v = await TokenVerifier.create({ ...base, hs256Secret: DEV_HS256_SECRET, issuer: 'idp' });
    await rejects(v, await mintToken({ ...claims, iss: 'evil' }), 'wrong issuer');
    await rejects(v, await mintToken(claims), 'token has no iss');
  });

  it('rejects alg none', async () => {
    const payload = { ...claims, aud: 'switchboard', exp: inOneHour() };
    for (const v of [hsOnly, rsOnly, both]) {
      await rejects(v, handMade({ alg: 'none' }, payload), 'algorithm not allowed');
      await rejects(
        v,
        handMade({ alg: 'none', typ: 'JWT' }, payload, 'x'),
        'algorithm not allowed',
      );
      await rejects(v, handMade({ alg: 'None' }, payload), 'algorithm not allowed');
      await rejects(v, handMade({}, payload), 'algorithm not allowed');
    }
  });

  it('rejects an HS256 token signed with the RS public key (RS/HS confusion)', async () => {
    for (const pem of [rsa1.publicPem, rsa1.publicPem.trim()]) {
      const token = await mintToken({ ...claims, alg: 'HS256', secret: pem, kid: rsa1.kid });
      await rejects(rsOnly, token, 'algorithm not allowed');
      // With a secret configured too, HS256 is checked against the secret only.
      await rejects(both, token, 'bad signature');
    }
  });

  it('rejects an RS256 token when only HS256 is configured', async () => {
    const token = await mintToken({ ...claims, privateKey: rsa1.privateKey });
    await rejects(hsOnly, token, 'algorithm not allowed');
  });

  it('rejects other algorithms: HS512, RS384, PS256, ES256', async () => {
    const payload = { ...claims, aud: 'switchboard', exp: inOneHour() };
    const secret = new TextEncoder().encode(DEV_HS256_SECRET + DEV_HS256_SECRET);
    const hs512 = await new SignJWT(payload).setProtectedHeader({ alg: 'HS512' }).sign(secret);
    await rejects(hsOnly, hs512, 'algorithm not allowed');
    await rejects(both, hs512, 'algorithm not allowed');
    for (const alg of ['RS384', 'PS256']) {
      const token = await new SignJWT(payload)
        .setProtectedHeader({ alg, kid: rsa1.kid })
        .sign(rsa1.privateKey);
      await rejects(rsOnly, token, 'algorithm not allowed');
    }
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const es256 = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES256' })
      .sign(ec.privateKey);
    await rejects(rsOnly, es256, 'algorithm not allowed');
    await rejects(both, es256, 'algorithm not allowed');
  });

  it('rejects a token with a tampered payload', async () => {
    const [h, , s] = (await mintToken(claims)).split('.');
    const forged = `${h ?? ''}.${base64url.encode(JSON.stringify({ ...claims, rooms: ['*'], aud: 'switchboard', exp: inOneHour() }))}.${s ?? ''}`;
    await rejects(hsOnly, forged, 'bad signature');
  });

  it('rejects a token signed with another secret', async () => {
    const token = await mintToken({ ...claims, secret: 'x'.repeat(40) });
    await rejects(hsOnly, token, 'bad signature');
  });

  it('rejects bad claims: no sub, rooms not an array, bad host or call grants, oversized', async () => {
    const cases: Record<string, unknown>[] = [
      { sub: undefined },
      { sub: '' },
      { sub: 42 },
      { sub: 'u'.repeat(129) },
      { rooms: 'room-1' },
      { rooms: { 0: 'room-1' } },
      { rooms: [''] },
      { host: 'a.b' },
      { host: '' },
      { call: 'cam-1' },
      { call: ['a.*'] },
      { rooms: [1] },
      { rooms: ['r'.repeat(130)] },
      { rooms: Array.from({ length: 257 }, (_, i) => `room-${i}`) },
      { name: 'n'.repeat(129) },
      { name: 7 },
    ];
    for (const extra of cases) {
      await rejects(hsOnly, await mintToken({ ...claims, extra }), 'invalid claims');
    }
    const rs = await mintToken({ ...claims, privateKey: rsa1.privateKey, extra: { rooms: 'x' } });
    await rejects(rsOnly, rs, 'invalid claims');
  });

  it('takes a token without rooms (a host or a caller): it joins nothing', async () => {
    const grant = await hsOnly.verify(
      await mintToken({ ...claims, extra: { rooms: undefined, host: 'cam-1', call: ['cam-*'] } }),
    );
    expect(grant.rooms).toEqual([]);
    expect(grant.host).toBe('cam-1');
    expect(grant.call).toEqual(['cam-*']);
    expect(grant.grants.call).toEqual(['cam-*']);
    expect(hsOnly.mayJoin(grant, 'room-1')).toBe(false);
  });

  it('rejects garbage', async () => {
    const garbage = [
      '',
      'garbage',
      'Bearer x',
      'a.b.c',
      '...',
      'e30.e30.',
      'e30.e30.e30',
      'eyJhbGciOiJIUzI1NiJ9',
      'eyJhbGciOiJIUzI1NiJ9.',
      'eyJhbGciOiJIUzI1NiJ9..',
      'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln',
      'eyJhbGciOiJIUzI1NiJ9.W10.c2ln',
      `${base64url.encode('{"alg":"HS256"}')}.${base64url.encode('"str"')}.sig`,
      `${base64url.encode('[1]')}.e30.sig`,
      '\u0000\u0001\u0002',
      '🙂.🙂.🙂',
      // A JWE (five parts) is not a JWS.
      `${base64url.encode('{"alg":"dir","enc":"A256GCM"}')}..aXY.Y3Q.dGFn`,
      `${base64url.encode('{"alg":"HS256"}')}..aXY.Y3Q.dGFn`,
    ];
    for (const token of garbage) {
      for (const v of [hsOnly, rsOnly, both]) {
        const err = await v.verify(token).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, JSON.stringify(token)).toBeInstanceOf(ProtocolError);
        expect((err as ProtocolError).errorName).toBe('AUTH_FAILED');
      }
    }
    // A real token with a byte of its signature changed.
    const token = await mintToken(claims);
    const flipped = token.slice(0, -2) + (token.at(-2) === 'A' ? 'B' : 'A') + token.slice(-1);
    await rejects(hsOnly, flipped, 'bad signature');
  });

  it('rejects what only a lenient decoder would take: stray characters, crit, a bad iat', async () => {
    const token = await mintToken(claims);
    const [h = '', p = '', sig = ''] = token.split('.');
    // Buffer's base64url decoder skips characters it does not know; the verifier does not.
    await rejects(hsOnly, `${h}.${p}.${sig.slice(0, -1)}+`, 'bad signature');
    await rejects(hsOnly, `${h}.${p}.${sig}=`, 'bad signature');
    await rejects(hsOnly, `${h}.${p}!.${sig}`, 'malformed token');
    await rejects(hsOnly, `${h}.${p}.${sig}AA`, 'bad signature');
    const payload = { ...claims, aud: 'switchboard', exp: inOneHour() };
    const secret = new TextEncoder().encode(DEV_HS256_SECRET);
    // Correctly signed by hand (jose would not sign these headers).
    const signedBy = (header: object, body: object): string => {
      const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(body))}`;
      const mac = createHmac('sha256', secret).update(input).digest();
      return `${input}.${base64url.encode(mac)}`;
    };
    await rejects(hsOnly, signedBy({ alg: 'HS256', crit: ['x'], x: 1 }, payload), 'malformed');
    await rejects(hsOnly, signedBy({ alg: 'HS256', b64: false }, payload), 'malformed');
    await rejects(hsOnly, signedBy({ alg: 'HS256' }, { ...payload, iat: 'now' }), 'invalid iat');
    await rejects(hsOnly, signedBy({ alg: 'HS256' }, { ...payload, exp: null }), 'invalid exp');
    expect((await hsOnly.verify(signedBy({ alg: 'HS256' }, payload))).userId).toBe('alice');
  });

  it('rejects a token longer than 8192 characters before parsing it', async () => {
    expect(MAX_TOKEN_LENGTH).toBe(8192);
    await rejects(hsOnly, 'x'.repeat(MAX_TOKEN_LENGTH + 1), 'token too long');
    const big = await mintToken({ ...claims, extra: { pad: 'p'.repeat(MAX_TOKEN_LENGTH) } });
    expect(big.length).toBeGreaterThan(MAX_TOKEN_LENGTH);
    await rejects(hsOnly, big, 'token too long');
    const fits = await mintToken({ ...claims, extra: { pad: 'p'.repeat(5000) } });
    expect(fits.length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH);
    expect(await hsOnly.verify(fits)).toMatchObject({ userId: 'alice' });
  });
});

describe('room grants', () => {
  it('lets a grant join exactly its rooms and its prefixes', async () => {
    const grant = await hsOnly.verify(
      await mintToken({ sub: 'bob', rooms: ['lobby', 'team-a:*'] }),
    );
    expect(hsOnly.mayJoin(grant, 'lobby')).toBe(true);
    expect(hsOnly.mayJoin(grant, 'team-a:standup')).toBe(true);
    expect(hsOnly.mayJoin(grant, 'lobby2')).toBe(false);
    expect(hsOnly.mayJoin(grant, 'team-b:standup')).toBe(false);
    const all = await hsOnly.verify(await mintToken({ sub: 'admin', rooms: ['*'] }));
    expect(hsOnly.mayJoin(all, 'anything')).toBe(true);
  });
});
