/**
 * The bus identities of the devstack's NATS: a random password per identity (each of the
 * services, `admin`, `tail`, and the tests' own `test`, which may do everything), written
 * to files readable by this user only, and the nats-server configuration that gives each
 * identity its permissions (libs/protocol/src/permissions.ts).
 *
 * The configuration is rendered for the prefix `*` — any one-token subject prefix — since
 * every test file works under a prefix of its own on the same server. Under `*`, JetStream
 * rights are per operation rather than per stream (stream names embed the prefix); the
 * permission tests also check a configuration rendered for one real prefix.
 *
 * Who uses what: a service the devstack starts gets `NATS_USER` and `NATS_PASSWORD_FILE`
 * of its own identity (`natsIdentityEnv`); a test's own connections use `test`
 * (`harnessNatsAuth`). The directory is found through SWITCHBOARD_NATS_AUTH_DIR, which the
 * devstack sets for the processes it starts (and the test run for its workers).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  NATS_IDENTITIES,
  natsInboxPrefix,
  renderNatsServerConfig,
  type NatsIdentity,
} from '@switchboard/protocol';

/** The identities of the devstack's NATS: the platform's, and the tests' own `test`. */
export type DevIdentity = NatsIdentity | 'test';
export const DEV_IDENTITIES: readonly DevIdentity[] = [...NATS_IDENTITIES, 'test'];

/** The environment variable naming the credentials directory of the devstack's NATS. */
export const NATS_AUTH_DIR_ENV = 'SWITCHBOARD_NATS_AUTH_DIR';

/** Credentials of the devstack's NATS, in `dir` (`<identity>.password`, mode 0600). */
export class NatsCredentials {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** New random passwords for every identity, written to `dir` (0700) as 0600 files. */
  static async generate(dir: string): Promise<NatsCredentials> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    for (const identity of DEV_IDENTITIES) {
      await writeFile(join(dir, `${identity}.password`), randomBytes(24).toString('base64url'), {
        mode: 0o600,
      });
    }
    return new NatsCredentials(dir);
  }

  /** The credentials of the devstack this process belongs to (SWITCHBOARD_NATS_AUTH_DIR). */
  static current(): NatsCredentials | undefined {
    const dir = process.env[NATS_AUTH_DIR_ENV];
    return dir === undefined || dir === '' ? undefined : new NatsCredentials(dir);
  }

  has(identity: DevIdentity): boolean {
    return existsSync(this.passwordFile(identity));
  }

  passwordFile(identity: DevIdentity): string {
    return join(this.dir, `${identity}.password`);
  }

  password(identity: DevIdentity): string {
    return readFileSync(this.passwordFile(identity), 'utf8').trim();
  }

  /** A service's (or a tool's) environment for `identity`: user and password file. */
  env(identity: DevIdentity): Record<string, string> {
    return { NATS_USER: identity, NATS_PASSWORD_FILE: this.passwordFile(identity) };
  }

  /** nats.js connection options of `identity`. */
  connectOptions(
    identity: DevIdentity = 'test',
    prefix?: string,
  ): { user: string; pass: string; inboxPrefix?: string } {
    return {
      user: identity,
      pass: this.password(identity),
      ...(prefix === undefined || identity === 'test'
        ? {}
        : { inboxPrefix: natsInboxPrefix(prefix, identity) }),
    };
  }

  /** The `auth` of a Bus connecting as `identity` (the tests' own `test` by default). */
  busAuth(
    identity: DevIdentity = 'test',
    prefix?: string,
  ): { user: { name: string; password: string }; inboxPrefix?: string } {
    const { user, pass, inboxPrefix } = this.connectOptions(identity, prefix);
    return {
      user: { name: user, password: pass },
      ...(inboxPrefix === undefined ? {} : { inboxPrefix }),
    };
  }

  /** The authorization block of a nats-server configuration for these credentials. */
  serverConfig(prefix = '*'): string {
    return renderNatsServerConfig({
      prefix,
      users: DEV_IDENTITIES.map((identity) => ({
        identity,
        user: identity,
        password: this.password(identity),
      })),
    });
  }
}

function current(): NatsCredentials {
  const creds = NatsCredentials.current();
  if (creds === undefined) {
    throw new Error(
      `${NATS_AUTH_DIR_ENV} is not set: NATS credentials come from the devstack (ensureInfra, the test run's global setup)`,
    );
  }
  return creds;
}

/** The `auth` of a test's own Bus: identity `test` of the devstack's NATS. */
export function harnessNatsAuth(): { user: { name: string; password: string } } {
  return current().busAuth('test');
}

/** nats.js options of a test's own connection: identity `test` of the devstack's NATS. */
export function harnessConnectOptions(): { user: string; pass: string } {
  const { user, pass } = current().connectOptions('test');
  return { user, pass };
}

/** The environment that gives a process `identity`'s credentials on the devstack's NATS. */
export function natsIdentityEnv(identity: DevIdentity): Record<string, string> {
  return current().env(identity);
}
