/** docs/webhook-verify.mjs, the README's verification snippet (the tests import it). */
export declare function verifySwitchboardWebhook(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string,
  toleranceS?: number,
): boolean;
