/**
 * How a process proves who it is to NATS, and how it reaches it over TLS: the connection
 * options of a bus identity (see libs/protocol/src/permissions.ts for what each may do).
 */
import {
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
} from '@nats-io/transport-node';

export interface BusAuth {
  /** User name and password. */
  user?: { name: string; password: string };
  /** An NKey user's seed (`SU…`). */
  nkeySeed?: string;
  /** The contents of a `.creds` file (a user JWT and its NKey seed). */
  creds?: string;
  /** TLS: the CA to trust, and a client certificate and key (paths, read at each connect). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** The subject prefix of this connection's reply inboxes (default `_INBOX`). */
  inboxPrefix?: string;
}

/** The nats.js connection options of `auth`. */
export function natsAuthOptions(auth: BusAuth | undefined): Partial<ConnectionOptions> {
  if (auth === undefined) return {};
  const opts: Partial<ConnectionOptions> = {};
  if (auth.user !== undefined) {
    opts.user = auth.user.name;
    opts.pass = auth.user.password;
  }
  if (auth.nkeySeed !== undefined) {
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(auth.nkeySeed));
  }
  if (auth.creds !== undefined) {
    opts.authenticator = credsAuthenticator(new TextEncoder().encode(auth.creds));
  }
  if (auth.tls !== undefined) {
    const { caFile, certFile, keyFile } = auth.tls;
    opts.tls = {
      ...(caFile === undefined ? {} : { caFile }),
      ...(certFile === undefined ? {} : { certFile }),
      ...(keyFile === undefined ? {} : { keyFile }),
    };
  }
  if (auth.inboxPrefix !== undefined) opts.inboxPrefix = auth.inboxPrefix;
  return opts;
}

/** Whether `seed` is a usable NKey user seed (it signs). */
export function isNkeySeed(seed: string): boolean {
  try {
    nkeyAuthenticator(new TextEncoder().encode(seed))('check');
    return seed.startsWith('SU');
  } catch {
    return false;
  }
}

/** Whether `creds` is a usable `.creds` file: a JWT and an NKey seed that signs. */
export function isCreds(creds: string): boolean {
  try {
    const auth: unknown = credsAuthenticator(new TextEncoder().encode(creds))('check');
    const jwt = (auth as { jwt?: unknown } | undefined)?.jwt;
    return typeof jwt === 'string' && jwt.split('.').length === 3;
  } catch {
    return false;
  }
}
