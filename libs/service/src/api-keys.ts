/**
 * The API keys of a service's configuration (API_KEYS or API_KEYS_FILE, libs/protocol
 * config.ts `apiKeys`), checked at start. A problem is a ConfigError naming the variable and
 * the key — never a secret.
 */
import { readFileSync } from 'node:fs';
import { API_SECRET_MIN_LENGTH, ApiKeyId, validator } from '@switchboard/protocol';
import { ConfigError, type ConfigIssue } from './config.ts';

export interface ApiKeysConfig {
  API_KEYS?: string | undefined;
  API_KEYS_FILE?: string | undefined;
}

const keyId = validator(ApiKeyId);

/** Key id → secret. Empty when neither variable is set. */
export function loadApiKeys(config: ApiKeysConfig): ReadonlyMap<string, string> {
  const issues: ConfigIssue[] = [];
  let text: string | undefined;
  let variable = 'API_KEYS';
  if (config.API_KEYS !== undefined && config.API_KEYS_FILE !== undefined) {
    throw new ConfigError([
      { variable: 'API_KEYS_FILE', message: 'give API_KEYS or API_KEYS_FILE, not both' },
    ]);
  }
  if (config.API_KEYS_FILE !== undefined) {
    variable = 'API_KEYS_FILE';
    try {
      text = readFileSync(config.API_KEYS_FILE, 'utf8');
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new ConfigError([
        {
          variable,
          message: `cannot read ${config.API_KEYS_FILE} (${typeof code === 'string' ? code : 'error'})`,
        },
      ]);
    }
  } else {
    text = config.API_KEYS;
  }
  const keys = new Map<string, string>();
  if (text === undefined) return keys;
  for (const [i, entry] of text
    .split(/[\s,]+/)
    .filter((e) => e !== '')
    .entries()) {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const secret = colon < 0 ? '' : entry.slice(colon + 1);
    // The entry itself is never echoed: it holds a secret.
    if (!keyId.check(id)) {
      issues.push({ variable, message: `entry ${i + 1} is not key:secret with a valid key id` });
    } else if (secret.length < API_SECRET_MIN_LENGTH) {
      issues.push({
        variable,
        message: `the secret of key ${id} is shorter than ${API_SECRET_MIN_LENGTH} characters`,
      });
    } else if (keys.has(id)) {
      issues.push({ variable, message: `key ${id} is given twice` });
    } else {
      keys.set(id, secret);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  if (text.trim() !== '' && keys.size === 0) {
    throw new ConfigError([{ variable, message: 'holds no key' }]);
  }
  return keys;
}
