import type { TSchema } from 'typebox';
import { describe, expect, it } from 'vitest';
import {
  GatewayConfig,
  RoomsConfig,
  isSecretName,
  isSecretVariable,
  redactUrls,
} from '@switchboard/protocol';

describe('redactUrls', () => {
  it('hides passwords and NATS tokens, keeps users, hosts and paths', () => {
    expect(redactUrls('postgresql://rooms:s3cret@db:5432/sb')).toBe(
      'postgresql://rooms:***@db:5432/sb',
    );
    expect(redactUrls('postgresql://postgres@127.0.0.1:5432/sb')).toBe(
      'postgresql://postgres@127.0.0.1:5432/sb',
    );
    expect(redactUrls('nats://a:b@n1:4222,tls://T0KEN@n2:4222')).toBe(
      'nats://a:***@n1:4222,tls://***@n2:4222',
    );
    // A password holding an unencoded '@', and one in the query.
    expect(redactUrls('postgres://u:p@ss@db/x?sslmode=require&password=pw')).toBe(
      'postgres://u:***@db/x?sslmode=require&password=***',
    );
    // Inside free text (an error message), several URLs.
    expect(redactUrls('connect to nats://u:pw@h:1 failed; tried ws://k@h2')).toBe(
      'connect to nats://u:***@h:1 failed; tried ws://***@h2',
    );
    expect(redactUrls('no url here: user@example.com')).toBe('no url here: user@example.com');
  });
});

describe('secret variables', () => {
  it('are the ones marked in the schemas, and those named like secrets', () => {
    const props: Record<string, TSchema> = GatewayConfig.properties;
    expect(isSecretVariable('AUTH_HS256_SECRET', props['AUTH_HS256_SECRET'])).toBe(true);
    expect(isSecretVariable('TURN_SECRET', props['TURN_SECRET'])).toBe(true);
    expect(isSecretVariable('HTTP_PORT', props['HTTP_PORT'])).toBe(false);
    // A URL: shown with its credentials redacted.
    expect(isSecretVariable('DATABASE_URL', RoomsConfig.properties.DATABASE_URL)).toBe(false);
    for (const n of ['X_PASSWORD', 'API_TOKEN', 'SIGNING_KEY', 'AWS_CREDENTIALS', 'SEED'])
      expect(isSecretName(n), n).toBe(true);
  });
});
