/**
 * The SDK's both sides in Node, through the running platform: a host (werift) registered
 * on one gateway, a caller (werift) on the other; the call goes through the call queue, the
 * RPC over the data channel that results is peer to peer. The example agent's service.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintToken } from '@switchboard/devstack';
import { signIn, serveHost, type Caller, type HostAgent } from '@switchboard/client';
import { Agent } from '@switchboard/example-agent';
import { agentService } from '@switchboard/example-agent/agent';
import { LOOPBACK_CONFIG, WeriftPeer } from '@switchboard/rpc/werift';
import { ErrorCodes, isProtocolError } from '@switchboard/protocol';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';

let sp: SignalingPlatform;
const closers: (() => Promise<void>)[] = [];
const wsUrl = (gw: { url: string }): string => `${gw.url.replace(/^http/, 'ws')}/api`;
const createPeer = (): WeriftPeer => new WeriftPeer(LOOPBACK_CONFIG);

beforeAll(async () => {
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'), {
    HOST_PRESENCE_INTERVAL_MS: '500',
    HOST_READ_DEADLINE_GRACE_MS: '500',
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await sp.stop();
});

async function agent(name: string, files = new Map<string, Uint8Array>()): Promise<HostAgent> {
  const token = await mintToken({ sub: `agent-${name}`, rooms: [], extra: { host: name } });
  const a = await serveHost(wsUrl(sp.gw2), { token, createPeer }, (rpc) =>
    rpc.add(Agent, agentService(files)),
  );
  closers.push(async () => {
    await a.close();
  });
  return a;
}

/** What the callers reported through onError (a stray frame, a failed candidate…). */
const reported: string[] = [];

async function caller(call: string[]): Promise<Caller> {
  const token = await mintToken({ sub: 'node-caller', rooms: [], extra: { call } });
  const c = await signIn(wsUrl(sp.gw1), {
    token,
    createPeer,
    onError: (error, context) => reported.push(`${context}: ${error.message}`),
  });
  closers.push(async () => {
    await c.close();
  });
  return c;
}

describe('Node caller → Node host through two gateways', () => {
  it('calls by name; unary, a metrics stream and a download over the data channel', async () => {
    const file = new Uint8Array(600_000).map((_, i) => (i * 7) % 251);
    const host = await agent('node-agent-1', new Map([['blob.bin', file]]));
    expect(host.host).toBe('node-agent-1');
    const c = await caller(['node-agent-*']);
    expect((await c.listHosts()).hosts).toContainEqual(
      expect.objectContaining({ host: 'node-agent-1', status: 'online' }),
    );
    const call = await c.call('node-agent-1', { timeoutMs: 10_000 });
    closers.push(async () => {
      await call.close();
    });
    const agentRpc = call.rpc.stub(Agent);
    expect((await agentRpc.ping({ seq: 7 })).seq).toBe(7);

    const samples = [];
    for await (const m of agentRpc.metrics({ intervalMs: 10, count: 3 })) samples.push(m);
    expect(samples).toHaveLength(3);
    expect(samples[0]?.rssBytes).toBeGreaterThan(0);

    const pieces: Buffer[] = [];
    for await (const piece of agentRpc.download({ name: 'blob.bin' })) {
      pieces.push(Buffer.from(piece.data, 'base64'));
    }
    expect(Buffer.concat(pieces).equals(Buffer.from(file))).toBe(true);
    expect(host.peers).toBe(1);
    // Hanging up ends the call on the host as soon as the data channel closes.
    const ended = new Promise((resolve) => host.on('ended', resolve));
    await call.close();
    expect(await ended).toMatchObject({ reason: 'the caller hung up' });
    expect(host.peers).toBe(0);
  });

  it('a caller without the grant is refused; an unknown host is HOST_UNAVAILABLE', async () => {
    await agent('node-agent-2');
    const c = await caller(['other-*']);
    const refused = await c.call('node-agent-2', { timeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isProtocolError(refused) && refused.code).toBe(ErrorCodes.PERMISSION_DENIED.code);
    const c2 = await caller(['*']);
    const unknown = await c2.call('nobody-here', { timeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isProtocolError(unknown) && unknown.code).toBe(ErrorCodes.HOST_UNAVAILABLE.code);
  });

  it('a call given up (AbortSignal) is withdrawn: the host never holds it', async () => {
    const token = await mintToken({
      sub: 'late-agent',
      rooms: [],
      extra: { host: 'node-agent-3' },
    });
    // Known but offline: online once, then gone.
    const first = await serveHost(wsUrl(sp.gw2), { token, createPeer, instance: 'instance-late' });
    await first.close();
    const c = await caller(['node-agent-3']);
    const before = reported.length;
    const ac = new AbortController();
    const pending = c.call('node-agent-3', { timeoutMs: 20_000, signal: ac.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    const err = await pending;
    expect(isProtocolError(err) && err.errorName).toBe('CANCELLED');
    const back = await agent('node-agent-3');
    await new Promise((r) => setTimeout(r, 1500));
    expect(back.peers).toBe(0);
    // The withdrawal was a request like any other: its reply is no stray frame.
    expect(reported.slice(before)).toEqual([]);
  });
});
