// Verify a Switchboard webhook in plain Node (no dependency). rawBody: the request body exactly
// as received (a string or Buffer, before any JSON parsing); header: its switchboard-signature;
// secret: the secret of the API key named in switchboard-key. True when genuine and fresh.
import { Buffer } from 'node:buffer';
import { createHmac, timingSafeEqual } from 'node:crypto';

export function verifySwitchboardWebhook(rawBody, header, secret, toleranceS = 300) {
  const parts = String(header ?? '')
    .split(',')
    .map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceS) return false; // replayed?
  const mac = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  return parts.some(
    ([k, v]) =>
      k === 'v1' && /^[0-9a-f]{64}$/.test(v) && timingSafeEqual(mac, Buffer.from(v, 'hex')),
  );
}
