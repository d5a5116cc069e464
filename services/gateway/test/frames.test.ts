import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '@switchboard/protocol';
import {
  decodeSdp,
  deviceOf,
  frameText,
  isActionName,
  metricAction,
  requestIdOf,
} from '../src/signaling/frames.ts';

const offer = { type: 'offer' as const, sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };

describe('decodeSdp', () => {
  it('takes the object or its JSON text', () => {
    expect(decodeSdp(offer)).toEqual(offer);
    expect(decodeSdp(JSON.stringify(offer))).toEqual(offer);
    expect(decodeSdp({ type: 'rollback', sdp: '' })).toEqual({ type: 'rollback', sdp: '' });
  });

  it.each([
    ['text that is not JSON', 'v=0 nope'],
    ['JSON that is not a description', '"v=0"'],
    ['no type', { sdp: 'v=0\r\n' }],
    ['an unknown type', { type: 'maybe', sdp: 'v=0\r\n' }],
    ['an SDP not starting with v=0', { type: 'answer', sdp: 'o=- 1 2 IN IP4 x\r\n' }],
    ['null', null],
  ])('refuses %s with SDP_DECODE', (_what, sdp) => {
    expect(() => decodeSdp(sdp)).toThrow(
      expect.objectContaining({ code: ErrorCodes.SDP_DECODE.code }) as Error,
    );
  });
});

describe('frame helpers', () => {
  it('reads text from every shape ws hands over', () => {
    expect(frameText('x')).toBe('x');
    expect(frameText(Buffer.from('é'))).toBe('é');
    expect(frameText([Buffer.from('a'), Buffer.from('b')])).toBe('ab');
    expect(frameText(new TextEncoder().encode('z').buffer)).toBe('z');
  });

  it('echoes only ids and actions the envelope accepts', () => {
    expect(requestIdOf(0)).toBe(0);
    expect(requestIdOf('a'.repeat(64))).toBe('a'.repeat(64));
    for (const bad of [-1, 1.5, 2 ** 53, '', 'a'.repeat(65), {}, null, true]) {
      expect(requestIdOf(bad)).toBeUndefined();
    }
    expect(isActionName('join')).toBe(true);
    expect(isActionName('')).toBe(false);
    expect(isActionName('a'.repeat(65))).toBe(false);
  });

  it('folds unknown actions in metric labels', () => {
    expect(metricAction('join')).toBe('join');
    expect(metricAction('eventCpu')).toBe('eventCpu');
    expect(metricAction('anything-else')).toBe('other');
  });

  it('passes on the device fields of a join, nothing else', () => {
    const d = { roomId: 'r', bearer: 'secret', platform: 'Web', camera: 'front' as const };
    const extra = { ...d, admin: true } as typeof d;
    expect(JSON.parse(JSON.stringify(deviceOf(extra)))).toEqual({
      platform: 'Web',
      camera: 'front',
    });
  });
});
