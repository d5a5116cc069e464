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
