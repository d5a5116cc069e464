import { describe, expect, it } from 'vitest';
import { GatewayConfig, MediaConfig, RoomsConfig } from '@switchboard/protocol';
import { ConfigError, loadConfig } from '@switchboard/service';

describe('loadConfig', () => {
  it('applies defaults to an empty environment', () => {
    const c = loadConfig(RoomsConfig, {});
    expect(c.HTTP_PORT).toBe(8081);
    expect(c.NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(c.NATS_SUBJECT_PREFIX).toBe('sb');
    expect(c.DATABASE_POOL_MAX).toBe(10);
    expect(c.INSTANCE_ID).toBeUndefined();
  });

  it('converts numbers and keeps strings', () => {
    const c = loadConfig(MediaConfig, {
      HTTP_PORT: '9000',
      MEDIASOUP_WORKERS: '3',
      MEDIASOUP_ANNOUNCED_ADDRESS: '203.0.113.7',
      LOG_LEVEL: 'debug',
      NATS_URL: 'nats://a:4222,nats://b:4222',
    });
    expect(c.HTTP_PORT).toBe(9000);
    expect(c.MEDIASOUP_WORKERS).toBe(3);
    expect(c.MEDIASOUP_ANNOUNCED_ADDRESS).toBe('203.0.113.7');
    expect(c.LOG_LEVEL).toBe('debug');
  });

  it('names every bad variable with the value it got', () => {
    let err: unknown;
    try {
      loadConfig(GatewayConfig, {
        HTTP_PORT: 'eighty',
        LOG_LEVEL: 'loud',
        NATS_URL: 'http://nats:4222',
        NATS_SUBJECT_PREFIX: 'a..b',
        NATS_REQUEST_TIMEOUT_MS: '-5',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues.map((i) => i.variable).sort();
    expect(issues).toEqual([
      'HTTP_PORT',
      'LOG_LEVEL',
      'NATS_REQUEST_TIMEOUT_MS',
      'NATS_SUBJECT_PREFIX',
      'NATS_URL',
    ]);
    expect((err as ConfigError).message).toContain('HTTP_PORT');
    expect((err as ConfigError).message).toContain('"eighty"');
  });

  it('never shows the value of a secret variable, nor the credentials of a URL', () => {
    const secret = 'hunter2-short';
    const turn = 'turn-secret-value';
    const pw = 'db-pa55word';
    const errOf = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).message;
      }
      throw new Error('no ConfigError');
    };
    const gw = errOf(() =>
      loadConfig(GatewayConfig, {
        AUTH_HS256_SECRET: secret,
        TURN_SECRET: '',
        NATS_URL: `nats://user:${pw}@nats:4222,http://tok${pw}@x`,
        GATEWAY_DEV_TOKENS: turn,
      }),
    );
    expect(gw).toMatch(
      /AUTH_HS256_SECRET: must not have fewer than 32 characters \(got \(value hidden/,
    );
    expect(gw).toMatch(/NATS_URL: .*nats:\/\/user:\*\*\*@nats:4222,http:\/\/\*\*\*@x/);
    // Named like a secret (…TOKENS): not shown either.
    expect(gw).toMatch(/GATEWAY_DEV_TOKENS: .*value hidden/);
    for (const s of [secret, pw, turn]) expect(gw).not.toContain(s);

    const rooms = errOf(() =>
      loadConfig(RoomsConfig, { DATABASE_URL: `mysql://rooms:${pw}@db/x?password=${pw}` }),
    );
    expect(rooms).toContain('"mysql://rooms:***@db/x?password=***"');
    expect(rooms).not.toContain(pw);
  });

  it('rejects out-of-range numbers and treats empty as unset', () => {
    expect(() => loadConfig(GatewayConfig, { HTTP_PORT: '70000' })).toThrow(/HTTP_PORT/);
    expect(loadConfig(GatewayConfig, { HTTP_PORT: '' }).HTTP_PORT).toBe(8080);
  });
});
