/**
 * A process's NATS identity from its configuration (NATS_USER, NATS_PASSWORD[_FILE],
 * NATS_NKEY_SEED[_FILE], NATS_CREDS_FILE, NATS_TLS_*_FILE), checked at start: files are read
 * (and must hold what they should), at most one way of authenticating is given. A problem is a
 * ConfigError naming the variable — never its secret.
 */
import { readFileSync } from 'node:fs';
import { isCreds, isNkeySeed, type BusAuth } from '@switchboard/bus';
import { natsInboxPrefix, type NatsAuthConfig, type NatsIdentity } from '@switchboard/protocol';
import { ConfigError, type ConfigIssue } from './config.ts';

/** The NATS settings of a service or a command-line tool: typed by libs/protocol's schema. */
export type { NatsAuthConfig } from '@switchboard/protocol';

/**
 * The bus identity `config` describes for `identity` (whose inbox prefix it gets); throws a
 * ConfigError naming every bad variable.
 */
export function natsAuth(config: NatsAuthConfig, identity: NatsIdentity): BusAuth {
  const issues: ConfigIssue[] = [];
  const bad = (variable: string, message: string): void => {
    issues.push({ variable, message });
  };
  const readable = (variable: keyof NatsAuthConfig): string | undefined => {
    const path = config[variable];
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      bad(variable, `cannot read ${path} (${typeof code === 'string' ? code : 'error'})`);
      return undefined;
    }
  };
  /** A secret given inline or as a file, not both; a file's surrounding whitespace dropped. */
  const secret = (
    inline: 'NATS_PASSWORD' | 'NATS_NKEY_SEED',
    file: 'NATS_PASSWORD_FILE' | 'NATS_NKEY_SEED_FILE',
  ): { value: string; from: string } | undefined => {
    if (config[inline] !== undefined && config[file] !== undefined) {
      bad(file, `give ${inline} or ${file}, not both`);
      return undefined;
    }
    if (config[inline] !== undefined) return { value: config[inline], from: inline };
    const text = readable(file)?.trim();
    if (text === undefined) return undefined;
    if (text === '') {
      bad(file, `${config[file] ?? ''} is empty`);
      return undefined;
    }
    return { value: text, from: file };
  };

  const auth: BusAuth = { inboxPrefix: natsInboxPrefix(config.NATS_SUBJECT_PREFIX, identity) };
  const schemes: string[] = [];

  const password = secret('NATS_PASSWORD', 'NATS_PASSWORD_FILE');
  if (config.NATS_USER !== undefined || password !== undefined) {
    schemes.push('NATS_USER');
    if (config.NATS_USER === undefined) {
      bad('NATS_USER', `is required with ${password?.from ?? 'a password'}`);
    } else if (password === undefined) {
      if (config.NATS_PASSWORD_FILE === undefined) {
        bad('NATS_PASSWORD', 'NATS_USER needs NATS_PASSWORD or NATS_PASSWORD_FILE');
      }
    } else {
      auth.user = { name: config.NATS_USER, password: password.value };
    }
  }

  const seed = secret('NATS_NKEY_SEED', 'NATS_NKEY_SEED_FILE');
  if (seed !== undefined) {
    schemes.push(seed.from);
    if (isNkeySeed(seed.value)) auth.nkeySeed = seed.value;
    else bad(seed.from, 'is not an NKey user seed (SU…)');
  }

  const creds = readable('NATS_CREDS_FILE');
  if (config.NATS_CREDS_FILE !== undefined) schemes.push('NATS_CREDS_FILE');
  if (creds !== undefined) {
    if (isCreds(creds)) auth.creds = creds;
    else bad('NATS_CREDS_FILE', `${config.NATS_CREDS_FILE ?? ''} is not a NATS .creds file`);
  }
  if (schemes.length > 1) {
    bad(schemes[1] ?? '', `one way of authenticating to NATS: ${schemes.join(' or ')}, not both`);
  }

  const ca = readable('NATS_TLS_CA_FILE');
  const cert = readable('NATS_TLS_CERT_FILE');
  const key = readable('NATS_TLS_KEY_FILE');
  if ((config.NATS_TLS_CERT_FILE === undefined) !== (config.NATS_TLS_KEY_FILE === undefined)) {
    bad(
      config.NATS_TLS_CERT_FILE === undefined ? 'NATS_TLS_CERT_FILE' : 'NATS_TLS_KEY_FILE',
      'NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together',
    );
  }
  for (const [variable, text, what] of [
    ['NATS_TLS_CA_FILE', ca, 'CERTIFICATE'],
    ['NATS_TLS_CERT_FILE', cert, 'CERTIFICATE'],
    ['NATS_TLS_KEY_FILE', key, 'PRIVATE KEY'],
  ] as const) {
    if (text !== undefined && !new RegExp(`-----BEGIN [A-Z ]*${what}-----`).test(text)) {
      bad(variable, `${config[variable] ?? ''} holds no PEM ${what.toLowerCase()}`);
    }
  }
  if (ca !== undefined || cert !== undefined) {
    auth.tls = {
      ...(config.NATS_TLS_CA_FILE === undefined ? {} : { caFile: config.NATS_TLS_CA_FILE }),
      ...(config.NATS_TLS_CERT_FILE === undefined ? {} : { certFile: config.NATS_TLS_CERT_FILE }),
      ...(config.NATS_TLS_KEY_FILE === undefined ? {} : { keyFile: config.NATS_TLS_KEY_FILE }),
    };
  }

  if (issues.length > 0) throw new ConfigError(issues);
  return auth;
}

/**
 * Remove the NATS secrets given inline (NATS_PASSWORD, NATS_NKEY_SEED) from `env` once read, so no child process (a mediasoup
 * worker inherits the whole environment) gets them.
 */
export function dropNatsSecrets(env: NodeJS.ProcessEnv = process.env): void {
  delete env['NATS_PASSWORD'];
  delete env['NATS_NKEY_SEED'];
}
