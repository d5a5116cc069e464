/**
 * The Node side of the host-call tests and the calls benchmark: a werift host serving the
 * example Agent and the HostTest service, counting what its handlers saw.
 */
import { createHash } from 'node:crypto';
import { connect, serveHost, type HostAgent, type HostAgentOptions } from '@switchboard/client';
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
 * protocol — a session of the SDK joins a room, answers offers relayed by exchangeSdp and
 * trades candidates through exchangeCandidate — whose data channels echo every message. One
 * answering peer at a time: a new offer replaces the previous connection.
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
  const session = await connect(url, {
    room: roomId,
    token: bearer,
    device: { deviceName: 'werift', appVersion: 'calls-bench' },
  });
  const fail = (err: unknown): void => {
    onError(err instanceof Error ? err : new Error(String(err)));
  };
  let peer: WeriftPeer | undefined;
  const answer = async (from: string, sdp: { type: string; sdp: string }): Promise<void> => {
    if (sdp.type !== 'offer') return;
    const old = peer;
    peer = undefined;
    await old?.close();
    const p = createWeriftPeer();
    peer = p;
    p.on('icecandidate', (c) => {
      const { candidate } = c;
      if (candidate === undefined || candidate === '') return;
      session
        .request('exchangeCandidate', { to: from, candidate: { ...c, candidate } })
        .catch(fail);
    });
    p.on('datachannel', ({ channel }) => {
      channel.addEventListener('message', (ev) => {
        const data = ev.data;
        // Echo as received: binary stays binary.
        if (data instanceof ArrayBuffer) channel.send(new Uint8Array(data));
        else if (ArrayBuffer.isView(data)) {
          channel.send(
            new Uint8Array(
              data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
            ),
          );
        }
      });
    });
    await p.setRemoteDescription({ type: 'offer', sdp: sdp.sdp });
    const reply = await p.createAnswer();
    await p.setLocalDescription(reply);
    await session.request('exchangeSdp', {
      to: from,
      sdp: { type: 'answer', sdp: reply.sdp ?? '' },
    });
  };
  // Events one after another: a candidate must not overtake its offer.
  let queue = Promise.resolve();
  const inOrder = (work: () => Promise<void>): void => {
    queue = queue.then(work).catch(fail);
  };
  session.on('eventExchangeSdp', ({ from, sdp }) => {
    inOrder(() => answer(from.socketId, sdp));
  });
  session.on('eventExchangeCandidate', ({ candidate }) => {
    inOrder(async () => {
      await peer?.addIceCandidate(candidate);
    });
  });
  return {
    socketId: session.socketId,
    close: async () => {
      await session.leave();
      await queue;
      await peer?.close();
      peer = undefined;
    },
  };
}
