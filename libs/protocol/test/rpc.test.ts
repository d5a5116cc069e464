import { describe, expect, it } from 'vitest';
import Type from 'typebox';
import {
  MAX_FRAME_HEADER_BYTES,
  RpcStatus,
  RpcStatusCodes,
  decodeRpcFrame,
  defineService,
  encodeRpcFrame,
  rpcMetadata,
  rpcStatusName,
  unary,
} from '@switchboard/protocol';

describe('RPC frames', () => {
  it('round-trip: header, then payload', () => {
    const payload = new TextEncoder().encode('{"a":1}');
    const decoded = decodeRpcFrame(encodeRpcFrame({ id: 3, type: 'msg', more: true }, payload));
    expect(decoded).toEqual({ ok: true, frame: { id: 3, type: 'msg', more: true }, payload });
    const call = { id: 5, type: 'call', method: '/a.B/c', msg: true, end: true } as const;
    expect(decodeRpcFrame(encodeRpcFrame(call, payload))).toMatchObject({ ok: true, frame: call });
  });

  it('garbage is refused with a reason, and with the stream when one is named', () => {
    expect(decodeRpcFrame(new Uint8Array([0, 0]))).toMatchObject({ ok: false });
    expect(decodeRpcFrame(new Uint8Array([0, 0, 0, 9, 1]))).toMatchObject({ ok: false });
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, MAX_FRAME_HEADER_BYTES + 1);
    expect(decodeRpcFrame(huge)).toMatchObject({ ok: false, reason: 'header too large' });
    expect(decodeRpcFrame(new Uint8Array([0, 0, 0, 1, 0x7b]))).toEqual({
      ok: false,
      reason: 'header is not JSON',
    });
    const bad = encodeRpcFrame({ id: 7, type: 'status', code: -1 } as never);
    expect(decodeRpcFrame(bad)).toMatchObject({ ok: false, id: 7 });
    const payloadOnEnd = encodeRpcFrame({ id: 9, type: 'end' }, new Uint8Array([1]));
    expect(decodeRpcFrame(payloadOnEnd)).toMatchObject({ ok: false, id: 9 });
    const noId = encodeRpcFrame({ id: 0, type: 'end' } as never);
    expect(decodeRpcFrame(noId)).not.toHaveProperty('id');
  });

  it('status codes follow gRPC; unknown numbers read as UNKNOWN', () => {
    expect(RpcStatus.OK).toBe(0);
    expect(RpcStatus.UNAUTHENTICATED).toBe(16);
    expect(Object.keys(RpcStatusCodes)).toHaveLength(17);
    expect(rpcStatusName(8)).toBe('RESOURCE_EXHAUSTED');
    expect(rpcStatusName(99)).toBe('UNKNOWN');
  });

  it('metadata: lower-case keys, strings or lists of strings', () => {
    expect(rpcMetadata.check({ 'x-a': 'b', c: ['d', 'e'] })).toBe(true);
    expect(rpcMetadata.check({ 'X-A': 'b' })).toBe(false);
    expect(rpcMetadata.check({ __proto__x: 'b' })).toBe(false);
    expect(rpcMetadata.check({ a: 1 })).toBe(false);
  });
});

describe('defineService', () => {
  it('gives each method its path and validators', () => {
    const S = defineService('pkg.sub.Svc', {
      ping: unary(Type.Object({ n: Type.Integer() }), Type.Null()),
    });
    expect(S.methods.ping.path).toBe('/pkg.sub.Svc/ping');
    expect(S.methods.ping.kind).toBe('unary');
    expect(S.methods.ping.requests.check({ n: 1 })).toBe(true);
    expect(S.methods.ping.requests.check({ n: 'x' })).toBe(false);
  });

  it('refuses names that are not identifiers', () => {
    expect(() => defineService('bad name', {})).toThrow();
    expect(() =>
      defineService('ok.Name', { 'with/slash': unary(Type.Null(), Type.Null()) }),
    ).toThrow();
  });
});
