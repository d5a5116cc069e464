/**
 * `./run nats-config`: the NATS server configuration of a deployment's bus identities,
 * rendered from libs/protocol/src/permissions.ts, on stdout. No secret is in it: passwords and
 * NKey public keys are `$VARIABLES` the nats-server resolves from its environment (e.g. from a
 * Kubernetes Secret), and for operator (JWT) mode it prints the `nsc` commands that create
 * the users with the same permissions (the services then use their `.creds` files).
 *
 *   ./run nats-config [--prefix sb] [--auth password|nkey|nsc] [--account SWITCHBOARD]
 */
import { parseArgs } from 'node:util';
import {
  NATS_IDENTITIES,
  NATS_IDENTITY_ROLES,
  SubjectPrefix,
  natsPermissions,
  renderNatsServerConfig,
  validator,
  type NatsIdentity,
} from '@switchboard/protocol';

const USAGE = `usage: ./run nats-config [--prefix <NATS_SUBJECT_PREFIX>] [--auth password|nkey|nsc] [--account <name>]

  --prefix   the deployment's NATS_SUBJECT_PREFIX (default sb)
  --auth     password (default): users and passwords, each password the server's environment
             variable SB_NATS_<IDENTITY>_PASSWORD (plain or a bcrypt hash);
             nkey: NKey users, each public key the variable SB_NATS_<IDENTITY>_NKEY;
             nsc: the nsc commands creating the users in --account (operator/JWT mode)`;

/** The server-side variable holding an identity's password or public key. */
export function natsVariable(identity: NatsIdentity, what: 'PASSWORD' | 'NKEY'): string {
  return `SB_NATS_${identity.toUpperCase()}_${what}`;
}

const subjectPrefix = validator(SubjectPrefix);
const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The nsc commands that create every identity's user with its permissions in `account`. */
export function nscCommands(prefix: string, account: string): string {
  const table = natsPermissions(prefix);
  const lines = [
    `# Switchboard's bus identities for subject prefix "${prefix}" in account ${account},`,
    '# from libs/protocol/src/permissions.ts (./run nats-config --auth nsc). Then give each',
    "# service its user's .creds file (nsc generate creds -a ACCOUNT -n USER) as NATS_CREDS_FILE.",
  ];
  for (const identity of NATS_IDENTITIES) {
    const p = table[identity];
    lines.push(
      '',
      `# ${identity}: ${NATS_IDENTITY_ROLES[identity]}`,
      `nsc add user --account ${shellQuote(account)} --name ${identity}`,
      [
        `nsc edit user --account ${shellQuote(account)} --name ${identity}`,
        `--allow-pub ${shellQuote(p.publish.join(','))}`,
        `--allow-sub ${shellQuote(p.subscribe.join(','))}`,
        ...(p.allowResponses ? ['--allow-pub-response=1'] : []),
      ].join(' \\\n    '),
    );
  }
  return `${lines.join('\n')}\n`;
}

export function natsConfig(prefix: string, auth: 'password' | 'nkey'): string {
  return renderNatsServerConfig({
    prefix,
    users: NATS_IDENTITIES.map((identity) =>
      auth === 'nkey'
        ? { identity, nkey: `$${natsVariable(identity, 'NKEY')}` }
        : { identity, user: identity, password: `$${natsVariable(identity, 'PASSWORD')}` },
    ),
  });
}

function main(argv: string[]): number {
  let values: { prefix?: string; auth?: string; account?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        prefix: { type: 'string' },
        auth: { type: 'string' },
        account: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const prefix = values.prefix ?? 'sb';
  if (!subjectPrefix.check(prefix)) {
    process.stderr.write(`--prefix: not a subject prefix: ${String(prefix)}\n${USAGE}\n`);
    return 2;
  }
  const auth = values.auth ?? 'password';
  if (auth === 'nsc') {
    process.stdout.write(nscCommands(prefix, values.account ?? 'SWITCHBOARD'));
  } else if (auth === 'password' || auth === 'nkey') {
    process.stdout.write(natsConfig(prefix, auth));
  } else {
    process.stderr.write(`--auth: password, nkey or nsc (got ${auth})\n${USAGE}\n`);
    return 2;
  }
  return 0;
}

if (process.argv[1] === import.meta.filename) {
  process.exitCode = main(process.argv.slice(2));
}
