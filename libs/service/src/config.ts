import type { Static, TObject, TSchema } from 'typebox';
import { describeValue, isSecretVariable, redactUrls, validator } from '@switchboard/protocol';

export interface ConfigIssue {
  variable: string;
  message: string;
}

/** The environment does not satisfy the service's config schema. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    // Credentials of URLs never reach the message, whoever wrote the issue.
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${redactUrls(i.message)}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function schemaKind(s: TSchema): string | undefined {
  const t = (s as { type?: unknown }).type;
  if (typeof t === 'string') return t;
  const anyOf = (s as { anyOf?: TSchema[] }).anyOf;
  if (anyOf !== undefined) return schemaKind(anyOf[0] as TSchema);
  const c = (s as { const?: unknown }).const;
  return c === undefined ? undefined : typeof c;
}

/** The allowed values of a union of literals (an enum-like setting), else undefined. */
function literalChoices(s: TSchema): string[] | undefined {
  const anyOf = (s as { anyOf?: TSchema[] }).anyOf;
  if (anyOf === undefined) return undefined;
  const values = anyOf.map((m) => (m as { const?: unknown }).const);
  return values.every((v) => typeof v === 'string') ? values : undefined;
}

/** Convert one environment string to the type its schema asks for (or leave it as is). */
function convert(raw: string, schema: TSchema): unknown {
  switch (schemaKind(schema)) {
    case 'integer':
    case 'number': {
      const t = raw.trim();
      return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : raw;
    }
    case 'boolean': {
      const t = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(t)) return true;
      if (['0', 'false', 'no', 'off'].includes(t)) return false;
      return raw;
    }
    case 'array':
    case 'object':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return raw;
      }
    default:
      return raw;
  }
}

/**
 * Read a service's configuration from the environment: every property of the schema is
 * an environment variable; empty or unset takes the schema's default. Throws ConfigError
 * naming every bad variable, so a service can fail fast with one clear message. The message
 * never holds a secret: the value of a secret variable (`secret: true` in its schema, or a
 * name like *SECRET*, *TOKEN*, *KEY*, *PASSWORD*) is not shown, and URLs in any other value
 * have their credentials redacted.
 */
export function loadConfig<S extends TObject>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): Static<S> {
  const out: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  const required = new Set((schema as { required?: string[] }).required ?? []);
  for (const [key, prop] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const raw = env[key];
    if (raw === undefined || raw === '') {
      const def = (prop as { default?: unknown }).default;
      if (def !== undefined) out[key] = def;
      else if (required.has(key)) issues.push({ variable: key, message: 'is required' });
      continue;
    }
    const value = convert(raw, prop);
    const parsed = validator(prop).parse(value);
    if (parsed.ok) {
      out[key] = value;
      continue;
    }
    const choices = literalChoices(prop);
    const secret = isSecretVariable(key, prop);
    const why =
      choices === undefined
        ? parsed.issues.map((i) => i.message).join('; ')
        : `must be one of ${choices.join(', ')}`;
    issues.push({
      variable: key,
      // A validator's message may quote the value (a const, an enum): not a secret's.
      message: `${secret ? why.replaceAll(raw, '…') : why} (got ${describeValue(raw, secret)})`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return out as Static<S>;
}
