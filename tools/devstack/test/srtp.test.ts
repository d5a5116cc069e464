/**
 * The tests' and the media benchmark's SRTP (src/srtp.ts): its key derivation against RFC
 * 3711's test vectors, and packets that come back whole through unprotect and not at all
 * when altered or under another key. That mediasoup takes what it protects, and that what
 * mediasoup sends opens with the keys it announced, is test/sfu/srtp.test.ts's.
 */
import { describe, expect, it } from 'vitest';
import { SrtpSession, randomSrtpKeys, srtpSessionKeys, type SrtpSuite } from '../src/srtp.ts';

const rtp = (seq: number, ssrc = 0xdeadbeef, payload = 200): Buffer => {
  const b = Buffer.alloc(12 + payload, 0x5a);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 3000, 4);
  b.writeUInt32BE(ssrc, 8);
  return b;
};

describe('SRTP', () => {
  it('derives the session keys of RFC 3711, appendix B.3', () => {
    const master = Buffer.from(
      'E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6',
      'hex',
    );
    const k = srtpSessionKeys({
      cryptoSuite: 'AES_CM_128_HMAC_SHA1_80',
      keyBase64: master.toString('base64'),
    });
    expect(k.key.toString('hex')).toBe('c61e7a93744f39ee10734afe3ff7a087');
    expect(k.salt.toString('hex')).toBe('30cbbc08863d8c85d49db34a9ae1');
    expect(k.authKey.toString('hex')).toBe('cebe321f6ff7716b6fd4ab49af256a156d38baa4');
  });

  for (const suite of ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_256_GCM'] as SrtpSuite[]) {
    it(`${suite}: protects and unprotects, across a sequence number rollover`, () => {
      const keys = randomSrtpKeys(suite);
      const sender = new SrtpSession(keys);
      const receiver = new SrtpSession(keys);
      const tag = suite === 'AEAD_AES_256_GCM' ? 16 : 10;
      for (const seq of [65_533, 65_534, 65_535, 0, 1, 2]) {
        const plain = rtp(seq);
        const srtp = sender.protect(plain);
        expect(srtp).toHaveLength(plain.length + tag);
        expect(srtp.subarray(0, 12)).toEqual(plain.subarray(0, 12)); // the header in the clear
        expect(srtp.subarray(12, plain.length)).not.toEqual(plain.subarray(12));
        expect(receiver.unprotect(srtp)).toEqual(plain);
      }
    });

    it(`${suite}: refuses a packet altered, or protected under another key`, () => {
      const keys = randomSrtpKeys(suite);
      const altered = new SrtpSession(keys).protect(rtp(7));
      altered[20] = (altered[20] ?? 0) ^ 1;
      expect(new SrtpSession(keys).unprotect(altered)).toBeUndefined();
      const other = new SrtpSession(randomSrtpKeys(suite)).protect(rtp(7));
      expect(new SrtpSession(keys).unprotect(other)).toBeUndefined();
      expect(() => new SrtpSession({ cryptoSuite: suite, keyBase64: 'AAAA' })).toThrow(
        /master key and salt/,
      );
    });
  }
});
