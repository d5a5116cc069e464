/**
 * SRTP for the tests and the media benchmark (RFC 3711, RFC 7714), on Node's OpenSSL: a
 * synthetic sender protects its RTP as a browser does, so that the SFU pays the decryption it
 * pays in a real room, and a test reads what the SFU sent with the keys it announced. Two
 * suites, the two mediasoup offers first:
 *
 * - AES_CM_128_HMAC_SHA1_80: AES-128 in counter mode, HMAC-SHA1 tag of 80 bits;
 * - AEAD_AES_256_GCM: AES-256-GCM, a 128-bit tag, the RTP header as associated data.
 *
 * Session keys are derived from the master key and salt with the SRTP KDF (AES-CM PRF, key
 * derivation rate 0). RTP only (no SRTCP). The rollover counter of each SSRC is counted from
 * the sequence numbers as they come, in order (no reordering).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { SrtpCryptoSuite, SrtpParameters } from '@switchboard/protocol';

/** The protocol's suites this implements. */
export type SrtpSuite = Extract<SrtpCryptoSuite, 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_256_GCM'>;

/** One side's keys (the protocol's SrtpParameters) in a suite this implements. */
export type SrtpKeys = SrtpParameters & { cryptoSuite: SrtpSuite };

const SIZES: Record<SrtpSuite, { key: number; salt: number; authKey: number; tag: number }> = {
  AES_CM_128_HMAC_SHA1_80: { key: 16, salt: 14, authKey: 20, tag: 10 },
  AEAD_AES_256_GCM: { key: 32, salt: 12, authKey: 0, tag: 16 },
};

/** Fresh random parameters of `suite` (a master key and salt of its sizes). */
export function randomSrtpKeys(suite: SrtpSuite): SrtpKeys {
  const { key, salt } = SIZES[suite];
  return { cryptoSuite: suite, keyBase64: randomBytes(key + salt).toString('base64') };
}

/**
 * The SRTP KDF (RFC 3711 §4.3.1 with kdr 0; RFC 7714 §11 pads a 96-bit salt to 112 bits):
 * `length` bytes of the AES-CM keystream under the master key, from the IV
 * (salt ⊕ (label << 48)) ‖ 0x0000.
 */
function derive(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0);
  iv[7] = (iv[7] ?? 0) ^ label;
  const cipher = createCipheriv(`aes-${String(masterKey.length * 8)}-ctr`, masterKey, iv);
  return cipher.update(Buffer.alloc(length));
}

/** The session keys of `params` (RFC 3711 §4.3): the cipher key, the authentication key, the salt. */
export function srtpSessionKeys(params: SrtpKeys): {
  key: Buffer;
  authKey: Buffer;
  salt: Buffer;
} {
  const sizes = SIZES[params.cryptoSuite];
  const master = Buffer.from(params.keyBase64, 'base64');
  if (master.length !== sizes.key + sizes.salt) {
    throw new Error(
      `${params.cryptoSuite}: the master key and salt are ${String(sizes.key + sizes.salt)} bytes`,
    );
  }
  const masterKey = master.subarray(0, sizes.key);
  const masterSalt = master.subarray(sizes.key);
  return {
    key: derive(masterKey, masterSalt, 0x00, sizes.key),
    authKey: derive(masterKey, masterSalt, 0x01, sizes.authKey),
    salt: derive(masterKey, masterSalt, 0x02, sizes.salt),
  };
}

/** The length of an RTP packet's header: fixed part, CSRCs and the extension, if any. */
function headerLength(packet: Buffer): number {
  const b0 = packet[0] ?? 0;
  let n = 12 + 4 * (b0 & 0x0f);
  if ((b0 & 0x10) !== 0) n += 4 + 4 * packet.readUInt16BE(n + 2);
  return n;
}

/** One side's SRTP context: protects (or unprotects) RTP packets under one master key. */
export class SrtpSession {
  readonly suite: SrtpSuite;
  readonly #key: Buffer;
  readonly #salt: Buffer;
  readonly #authKey: Buffer;
  /** Per SSRC: the last sequence number and the rollover counter. */
  readonly #rollover = new Map<number, { seq: number; roc: number }>();

  constructor(params: SrtpKeys) {
    this.suite = params.cryptoSuite;
    const keys = srtpSessionKeys(params);
    this.#key = keys.key;
    this.#authKey = keys.authKey;
    this.#salt = keys.salt;
  }

  /** The SRTP packet of RTP packet `rtp`: a new buffer, the header, the payload encrypted, the tag. */
  protect(rtp: Buffer): Buffer {
    const ssrc = rtp.readUInt32BE(8);
    const seq = rtp.readUInt16BE(2);
    const roc = this.#roc(ssrc, seq);
    const h = headerLength(rtp);
    return this.suite === 'AEAD_AES_256_GCM'
      ? this.#gcm(rtp, h, ssrc, roc, seq)
      : this.#ctr(rtp, h, ssrc, roc, seq);
  }

  /** The rollover counter for `seq` of `ssrc`, packets coming in order. */
  #roc(ssrc: number, seq: number): number {
    const s = this.#rollover.get(ssrc);
    if (s === undefined) {
      this.#rollover.set(ssrc, { seq, roc: 0 });
      return 0;
    }
    if (seq < s.seq && s.seq - seq > 0x8000) s.roc = (s.roc + 1) >>> 0;
    s.seq = seq;
    return s.roc;
  }

  /**
   * The RTP packet inside SRTP packet `srtp`, its tag checked; undefined when the tag does not
   * match (another key, a corrupted packet).
   */
  unprotect(srtp: Buffer): Buffer | undefined {
    const { tag } = SIZES[this.suite];
    if (srtp.length < 12 + tag) return undefined;
    const ssrc = srtp.readUInt32BE(8);
    const seq = srtp.readUInt16BE(2);
    const roc = this.#roc(ssrc, seq);
    const h = headerLength(srtp);
    const body = srtp.subarray(h, srtp.length - tag);
    const got = srtp.subarray(srtp.length - tag);
    if (this.suite === 'AEAD_AES_256_GCM') {
      const d = createDecipheriv('aes-256-gcm', this.#key, this.#gcmIv(ssrc, roc, seq), {
        authTagLength: tag,
      });
      d.setAAD(srtp.subarray(0, h));
      d.setAuthTag(got);
      try {
        return Buffer.concat([srtp.subarray(0, h), d.update(body), d.final()]);
      } catch {
        return undefined; // the tag did not match
      }
    }
    const want = this.#hmac(srtp.subarray(0, srtp.length - tag), roc);
    if (!timingSafeEqual(want, got)) return undefined;
    const plain = createDecipheriv('aes-128-ctr', this.#key, this.#ctrIv(ssrc, roc, seq)).update(
      body,
    );
    return Buffer.concat([srtp.subarray(0, h), plain]);
  }

  /** RFC 3711: AES-128-CM over the payload, then HMAC-SHA1(header ‖ payload ‖ ROC)[0..10). */
  #ctr(rtp: Buffer, h: number, ssrc: number, roc: number, seq: number): Buffer {
    const out = Buffer.allocUnsafe(rtp.length + SIZES.AES_CM_128_HMAC_SHA1_80.tag);
    rtp.copy(out, 0, 0, h);
    createCipheriv('aes-128-ctr', this.#key, this.#ctrIv(ssrc, roc, seq))
      .update(rtp.subarray(h))
      .copy(out, h);
    this.#hmac(out.subarray(0, rtp.length), roc).copy(out, rtp.length);
    return out;
  }

  /** RFC 7714: AES-256-GCM, IV = (0 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ salt, the header as AAD. */
  #gcm(rtp: Buffer, h: number, ssrc: number, roc: number, seq: number): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.#key, this.#gcmIv(ssrc, roc, seq), {
      authTagLength: SIZES.AEAD_AES_256_GCM.tag,
    });
    cipher.setAAD(rtp.subarray(0, h));
    const body = cipher.update(rtp.subarray(h));
    cipher.final();
    return Buffer.concat([rtp.subarray(0, h), body, cipher.getAuthTag()]);
  }

  /** (salt ‖ 0x0000) ⊕ (SSRC << 64) ⊕ ((ROC ‖ SEQ) << 16). */
  #ctrIv(ssrc: number, roc: number, seq: number): Buffer {
    const iv = Buffer.alloc(16);
    this.#salt.copy(iv, 0);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
    iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
    return iv;
  }

  /** (0x0000 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ salt. */
  #gcmIv(ssrc: number, roc: number, seq: number): Buffer {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(ssrc, 2);
    iv.writeUInt32BE(roc, 6);
    iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i] = (iv[i] ?? 0) ^ (this.#salt[i] ?? 0);
    return iv;
  }

  /** HMAC-SHA1(authenticated part ‖ ROC), truncated to the tag. */
  #hmac(authenticated: Buffer, roc: number): Buffer {
    const rocBytes = Buffer.allocUnsafe(4);
    rocBytes.writeUInt32BE(roc, 0);
    return createHmac('sha1', this.#authKey)
      .update(authenticated)
      .update(rocBytes)
      .digest()
      .subarray(0, SIZES.AES_CM_128_HMAC_SHA1_80.tag);
  }
}
