/**
 * SRTP on plain transports, through the platform: a broadcaster sends SRTP under its own keys,
 * a recorder receives SRTP under the keys the media node announced, each suite mediasoup
 * offers first (AES_CM_128_HMAC_SHA1_80, AEAD_AES_256_GCM). Plain RTP, or SRTP under another
 * key, sent to an SRTP transport goes nowhere; keys of the wrong size are the member's error;
 * no key reaches a log, even at trace level.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  SrtpSession,
  randomSrtpKeys,
  waitFor,
  type SrtpKeys,
  type SrtpSuite,
} from '@switchboard/devstack';
import { ErrorCodes } from '@switchboard/protocol';
import { TestClient } from '../signaling/client.ts';
import { startSfu, type SfuPlatform } from './platform.ts';
import { udpSink, vp8Parameters, vp8Source } from './rtp.ts';

let sfu: SfuPlatform;
const open: TestClient[] = [];
/** Every key this test gave or was given: none may be in the services' output. */
const keys: string[] = [];
let rooms = 0;

interface PlainInfo {
  id: string;
  ip: string;
  port: number;
  srtpParameters?: SrtpKeys;
}

/** A broadcaster and a recorder in a new room. */
async function pair(): Promise<{ caster: TestClient; recorder: TestClient }> {
  const url = sfu.gateways[0]?.url ?? '';
  const room = `srtp-${String(++rooms)}`;
  const caster = await TestClient.join(url, room, 'caster', { grants: { role: 'broadcaster' } });
  const recorder = await TestClient.join(url, room, 'recorder', { grants: { role: 'recorder' } });
  open.push(caster, recorder);
  return { caster, recorder };
}

/**
 * The receiving transport connected to a new sink, a VP8 producer of `ssrc` on the sending
 * one, and the recorder's consumer of it resumed: what `caster` sends now reaches the sink.
 */
async function forward(
  caster: TestClient,
  sending: PlainInfo,
  recorder: TestClient,
  receiving: PlainInfo,
  ssrc: number,
): Promise<Awaited<ReturnType<typeof udpSink>>> {
  const sink = await udpSink();
  await recorder.ok('connectPlainTransport', {
    transportId: receiving.id,
    ip: '127.0.0.1',
    port: sink.port,
  });
  await caster.ok('produce', {
    transportId: sending.id,
    kind: 'video',
    rtpParameters: vp8Parameters(ssrc),
  });
  const consumer = (await recorder.event('eventNewConsumer')).d as { id: string };
  await recorder.ok('resumeConsumer', { consumerId: consumer.id });
  return sink;
}

beforeAll(async () => {
  sfu = await startSfu(inject('natsUrl'), inject('pgServerUrl'), {
    env: { MEDIA_PLAIN_TRANSPORTS: 'true', LOG_LEVEL: 'trace' },
  });
});

afterAll(async () => {
  for (const c of open) c.kill();
  await sfu.stop();
});

describe('SRTP on plain transports', () => {
  for (const suite of ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_256_GCM'] as SrtpSuite[]) {
    it(`${suite}: forwards SRTP from a broadcaster to a recorder under the node's keys`, async () => {
      const { caster, recorder } = await pair();
      const casterKeys = randomSrtpKeys(suite);
      const recorderKeys = randomSrtpKeys(suite);
      keys.push(casterKeys.keyBase64, recorderKeys.keyBase64);
      const sending = (await caster.ok('createPlainTransport', {
        direction: 'send',
        srtp: casterKeys,
      })) as PlainInfo;
      const caps = await recorder.ok('getRouterRtpCapabilities');
      const receiving = (await recorder.ok('createPlainTransport', {
        direction: 'recv',
        rtpCapabilities: caps,
        srtp: recorderKeys,
      })) as PlainInfo;
      // The node's keys: fresh, its own, in the suite asked for.
      for (const t of [sending, receiving]) {
        expect(t.srtpParameters?.cryptoSuite).toBe(suite);
        keys.push(t.srtpParameters?.keyBase64 ?? '');
      }
      expect(new Set(keys).size).toBe(keys.length);
      const nodeKeys = receiving.srtpParameters;
      if (nodeKeys === undefined) throw new Error('no keys of the node');

      const sink = await forward(caster, sending, recorder, receiving, 7001);
      const sender = new SrtpSession(casterKeys);
      const source = vp8Source(sending, 7001, 30, (rtp) => sender.protect(rtp));
      try {
        await waitFor('SRTP forwarded to the recorder', async () => sink.media > 20);
        const last = sink.last;
        if (last === undefined) throw new Error('nothing received');
        // What the recorder got opens with the node's keys, and only with them.
        const plain = new SrtpSession(nodeKeys).unprotect(last);
        expect(plain?.readUInt8(1) ?? 0).toBe(0x80 | 101); // marker, VP8's payload type
        expect(new SrtpSession(recorderKeys).unprotect(last)).toBeUndefined();
        expect(new SrtpSession(casterKeys).unprotect(last)).toBeUndefined();
      } finally {
        source.stop();
        sink.close();
      }
    });
  }

  it('forwards nothing that is not SRTP under the broadcaster’s keys', async () => {
    const { caster, recorder } = await pair();
    const casterKeys = randomSrtpKeys('AEAD_AES_256_GCM');
    keys.push(casterKeys.keyBase64);
    const sending = (await caster.ok('createPlainTransport', {
      direction: 'send',
      srtp: casterKeys,
    })) as PlainInfo;
    keys.push(sending.srtpParameters?.keyBase64 ?? '');
    const caps = await recorder.ok('getRouterRtpCapabilities');
    const receiving = (await recorder.ok('createPlainTransport', {
      direction: 'recv',
      rtpCapabilities: caps,
    })) as PlainInfo;
    expect(receiving.srtpParameters).toBeUndefined(); // plain RTP, as before
    const sink = await forward(caster, sending, recorder, receiving, 7101);
    const stranger = new SrtpSession(randomSrtpKeys('AEAD_AES_256_GCM'));
    const plain = vp8Source(sending, 7101);
    const forged = vp8Source(sending, 7101, 30, (rtp) => stranger.protect(rtp));
    try {
      await waitFor('packets sent', async () => plain.sent > 30 && forged.sent > 30);
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.media).toBe(0);
      plain.stop();
      forged.stop();
      // The broadcaster's own keys, on the same transport, get through.
      const sender = new SrtpSession(casterKeys);
      const real = vp8Source(sending, 7101, 30, (rtp) => sender.protect(rtp));
      try {
        await waitFor('SRTP under the right keys forwarded', async () => sink.media > 10);
      } finally {
        real.stop();
      }
    } finally {
      plain.stop();
      forged.stop();
      sink.close();
    }
  });

  it('refuses keys of the wrong size for their suite as the member’s error', async () => {
    const { caster } = await pair();
    const r = await caster.request('createPlainTransport', {
      direction: 'send',
      // 30 bytes: an AES_CM key and salt, not AES-256-GCM's 44
      srtp: { cryptoSuite: 'AEAD_AES_256_GCM', keyBase64: Buffer.alloc(30, 1).toString('base64') },
    });
    expect(r).toMatchObject({ s: false, e: ErrorCodes.JSON_FIELD_INVALID.code });
    for (const bad of [
      { cryptoSuite: 'AES_256_CBC', keyBase64: Buffer.alloc(30).toString('base64') },
      { cryptoSuite: 'AEAD_AES_256_GCM', keyBase64: 'not base64!'.repeat(5) },
      { cryptoSuite: 'AEAD_AES_256_GCM' },
    ]) {
      const x = await caster.request('createPlainTransport', { direction: 'send', srtp: bad });
      expect(x.s, JSON.stringify(bad)).toBe(false);
    }
    // and the member can go on
    const t = (await caster.ok('createPlainTransport', { direction: 'send' })) as PlainInfo;
    expect(t.id).toBeDefined();
  });

  it('writes no key to any log', () => {
    const procs = [sfu.platform.get('rooms'), ...sfu.gateways, ...sfu.media];
    const output = procs.map((p) => p.process.output()).join('\n');
    expect(output.length).toBeGreaterThan(0);
    for (const k of keys) expect(output.includes(k), k).toBe(false);
  });
});
