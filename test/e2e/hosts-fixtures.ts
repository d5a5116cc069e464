/**
 * The Node side of the host-call tests and the calls benchmark: a werift host serving the
 * example Agent and the HostTest service, counting what its handlers saw.
 */
import { createHash } from 'node:crypto';
import { serveHost, type HostAgent, type HostAgentOptions } from '@switchboard/client';
import { Agent } from '@switchboard/example-agent';
import { agentService } from '@switchboard/example-agent/agent';
import { LOOPBACK_CONFIG, WeriftPeer } from '@switchboard/rpc/werift';
import { HostTest } from './hosts-service.ts';

export const wsUrl = (gw: { url: string }): string => `${gw.url.replace(/^http/, 'ws')}/api`;

/** werift on 127.0.0.1 only: Chromium reaches it with --allow-loopback-in-peer-connection. */
export const createWeriftPeer = (): WeriftPeer => new WeriftPeer(LOOPBACK_CONFIG);

export interface NodeHost {
  agent: HostAgent;
  /** HostTest.hang calls in progress. */
  hanging: number;
  /** The SHA-256 (hex) of every echo request, as the host received it. */
  echoed: string[];
}

export async function serveNodeHost(
  urls: string | string[],
  token: string,
  opts: Partial<HostAgentOptions> = {},
  files = new Map<string, Uint8Array>(),
): Promise<NodeHost> {
  const base = agentService(files);
  const seen: Omit<NodeHost, 'agent'> = { hanging: 0, echoed: [] };
  const agent = await serveHost(urls, { token, createPeer: createWeriftPeer, ...opts }, (rpc) =>
    rpc
      .add(Agent, {
        ...base,
        echo: (req, ctx) => {
          seen.echoed.push(createHash('sha256').update(req.data).digest('hex'));
          return base.echo(req, ctx);
        },
      })
      .add(HostTest, {
        hang: async (_req, ctx) => {
          seen.hanging++;
          try {
            return await new Promise<never>((_, reject) => {
              ctx.signal.addEventListener('abort', () => {
                reject(ctx.signal.reason as Error);
              });
            });
          } finally {
            seen.hanging--;
          }
        },
        whoami: () => ({ runtime: `node ${process.version}` }),
      }),
  );
  return Object.assign(seen, { agent });
}

/**
 * The benchmark's baseline peer: a werift peer connection set up by hand over the room
 * protocol (join a room, answer offers relayed by exchangeSdp, trade candidates through
 * exchangeCandidate) whose data channels echo every message. One answering peer at a time:
 * a new offer replaces the previous connection.
 */
export interface RoomEchoPeer {
  socketId: string;
  close(): Promise<void>;
}

export async function roomEchoPeer(
  url: string,
  bearer: string,
  roomId: string,
  onError: (err: Error) => void,
): Promise<RoomEchoPeer> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => {
      resolve();
    };
    ws.onerror = () => {
      reject(new Error(`cannot connect to ${url}`));
    };
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (d: unknown) => void; reject: (e: Error) => void }>();
  const request = async (a: string, d: unknown): Promise<unknown> =>
    await new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ a, d, id }));
    });
  let peer: WeriftPeer | undefined;
  type Frame = { a?: string; d?: Record<string, unknown>; id?: number; s?: boolean; e?: number };
  const handle = async (f: Frame): Promise<void> => {
    const d = f.d ?? {};
    if (f.a === 'eventExchangeSdp') {
      const from = (d['from'] as { socketId: string }).socketId;
      const sdp = d['sdp'] as { type: 'offer' | 'answer'; sdp: string };
      if (sdp.type !== 'offer') return;
      const old = peer;
      peer = undefined;
      await old?.close();
      const p = createWeriftPeer();
      peer = p;
      p.on('icecandidate', (c) => {
        if (c.candidate === undefined || c.candidate === '') return;
        request('exchangeCandidate', { to: from, candidate: c }).catch((err: unknown) => {
          onError(err instanceof Error ? err : new Error(String(err)));
        });
      });
      p.on('datachannel', ({ channel }) => {
        channel.addEventListener('message', (ev) => {
          const data = ev.data;
          // Echo as received: binary stays binary.
          if (data instanceof ArrayBuffer) channel.send(new Uint8Array(data));
          else if (ArrayBuffer.isView(data)) {
            channel.send(
              new Uint8Array(
                data.buffer.slice(
                  data.byteOffset,
                  data.byteOffset + data.byteLength,
                ) as ArrayBuffer,
              ),
            );
          }
        });
      });
      await p.setRemoteDescription(sdp);
      const answer = await p.createAnswer();
      await p.setLocalDescription(answer);
      await request('exchangeSdp', { to: from, sdp: { type: 'answer', sdp: answer.sdp ?? '' } });
    } else if (f.a === 'eventExchangeCandidate') {
      await peer?.addIceCandidate(d['candidate'] as { candidate: string });
    }
  };
  // Events one after another: a candidate must not overtake its offer.
  let queue = Promise.resolve();
  ws.onmessage = (m: MessageEvent) => {
    const f = JSON.parse(String(m.data)) as Frame;
    if (f.id !== undefined && pending.has(f.id)) {
      const p = pending.get(f.id);
      pending.delete(f.id);
      if (f.s === true) p?.resolve(f.d);
      else p?.reject(new Error(`request failed: 0x${(f.e ?? 0).toString(16)}`));
      return;
    }
    queue = queue
      .then(async () => {
        await handle(f);
      })
      .catch((err: unknown) => {
        onError(err instanceof Error ? err : new Error(String(err)));
      });
  };
  const joined = (await request('join', {
    roomId,
    bearer,
    platform: 'Web',
    deviceName: 'werift',
    networkType: 'wifi',
    version: `node ${process.version}`,
    appVersion: 'calls-bench',
    orientation: 90,
    camera: 'front',
  })) as { socketId: string };
  return {
    socketId: joined.socketId,
    close: async () => {
      ws.close(1000);
      await queue;
      await peer?.close();
      peer = undefined;
    },
  };
}
