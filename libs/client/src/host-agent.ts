/**
 * Be a host: register under the name your token grants (`hostOnline`) and answer the calls
 * made to it, each with a WebRTC peer connection whose data channels serve your RPC services
 * (seed 004's peer manager on seed 000's call queue):
 *
 *   const agent = await serveHost(
 *     ['wss://gw-a/api', 'wss://gw-b/api'],
 *     { token, createPeer: (config) => new WeriftPeer(config),  // or the browser's, by default
 *       maxPeers: 4, allowCaller: (from) => from.userId.startsWith('ops-') },
 *     (rpc) => rpc.add(Agent, { ping: async (req) => ({ seq: req.seq }), … }),
 *   );
 *
 * The link heartbeats at the interval the gateway gives (its presence), reconnects on its own
 * (through any gateway, keeping its instance: presence stays online across a short drop),
 * and goes dormant after failing for long; established calls are peer to peer and outlive
 * the link.
 */
import type { HostOnlineReply, IceServerList } from '@switchboard/protocol';
import {
  ProtocolError,
  type Caller,
  type HostEvents,
  type IceCandidate,
  type SessionDescription,
} from '@switchboard/protocol';
import {
  BrowserPeer,
  RpcServer,
  type IceCandidateInit,
  type RtcPeer,
  type ServedChannel,
} from '@switchboard/rpc';
import type { Static } from 'typebox';
import { Emitter, type Listener } from './emitter.ts';
import { trickle } from './trickle.ts';
import { SignalingLink, parseLinkReply, type LinkOptions, type LinkState } from './link.ts';

/** RTCIceServer[] as the gateway gives them (STUN bare, TURN with credentials). */
export type IceServers = Static<typeof IceServerList>;

/** Makes a peer connection for one call (`iceServers` from the gateway, when it has TURN). */
export type PeerFactory = (config: { iceServers: IceServers }) => RtcPeer;

export interface HostAgentOptions extends LinkOptions {
  /** This copy of the host (default: drawn once per agent; kept across reconnects). */
  instance?: string;
  /** Peer connections of calls (default: the browser's RTCPeerConnection). */
  createPeer?: PeerFactory;
  /** Calls held at once; more are refused with reason "busy" (default 16). */
  maxPeers?: number;
  /** Whether to take a call from this caller (default: everyone the gateway let through). */
  allowCaller?: (from: Caller) => boolean;
}

export interface HostCallInfo {
  callId: string;
  from: Caller;
}

export interface HostAgentEvents {
  /** A call was answered: its peer connects. */
  call: HostCallInfo;
  /** A call's peer connection ended (closed, failed, or the caller gave up first). */
  ended: HostCallInfo & { reason: string };
  state: { state: LinkState; previous: LinkState };
  error: { error: Error; context: string };
}

type CallEvent = Static<(typeof HostEvents)['eventCall']>;

interface Held {
  info: HostCallInfo;
  peer: RtcPeer;
  served: ServedChannel[];
  /** Candidates from the caller before the offer was applied. */
  early: IceCandidate[] | undefined;
  /** Local candidates before answerCall was sent. */
  pending: IceCandidateInit[] | undefined;
}

export class HostAgent {
  /** Register the services the callers may call. */
  readonly rpc: RpcServer;
  readonly #link: SignalingLink;
  readonly #events: Emitter<HostAgentEvents>;
  readonly #createPeer: PeerFactory;
  readonly #maxPeers: number;
  readonly #allow: (from: Caller) => boolean;
  readonly #instance: string;
  readonly #calls = new Map<string, Held>();
  #host: string | undefined;
  #iceServers: IceServers = [];

  constructor(urls: string | readonly string[], options: HostAgentOptions) {
    this.#instance = options.instance ?? randomInstance();
    this.#createPeer = options.createPeer ?? ((config) => new BrowserPeer(config));
    this.#maxPeers = options.maxPeers ?? 16;
    this.#allow = options.allowCaller ?? (() => true);
    this.#events = new Emitter<HostAgentEvents>((err) => {
      this.#link.reportError(err instanceof Error ? err : new Error(String(err)), 'a listener');
    });
    this.rpc = new RpcServer({
      onError: (err, method) => {
        this.#link.reportError(err instanceof Error ? err : new Error(String(err)), method);
      },
    });
    this.#link = new SignalingLink(
      urls,
      options,
      async (conn, token, signal) => {
        const r = parseLinkReply(
          'hostOnline',
          await conn.request(
            'hostOnline',
            { bearer: token, instance: this.#instance },
            { timeoutMs: options.connectTimeoutMs ?? 10_000, signal },
          ),
        ) as Static<typeof HostOnlineReply>;
        this.#host = r.host;
        this.#iceServers = r.iceServers ?? [];
        return { intervalMs: r.presenceIntervalMs, readDeadlineMs: r.readDeadlineMs };
      },
      (frame) => {
        this.#onFrame(frame);
      },
    );
    this.#link.on('state', (s) => {
      this.#events.emit('state', s);
    });
    this.#link.on('error', (e) => {
      if (this.#events.listenerCount('error') > 0) this.#events.emit('error', e);
      else (options.onError ?? defaultOnError)(e.error, e.context);
    });
  }

  /** The host name (once online). */
  get host(): string {
    if (this.#host === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#host;
  }

  get instance(): string {
    return this.#instance;
  }

  get state(): LinkState {
    return this.#link.state;
  }

  /** Calls held now. */
  get peers(): number {
    return this.#calls.size;
  }

  on<K extends keyof HostAgentEvents>(
    event: K,
    listener: Listener<HostAgentEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  async start(): Promise<void> {
    await this.#link.start();
  }

  /** Wake from dormancy (retry at once). */
  activity(): void {
    this.#link.activity();
  }

  /** End one call. */
  async hangUp(callId: string): Promise<void> {
    await this.#end(callId, 'hung up');
  }

  /** Go offline (at once, for every caller) and end every call. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.#calls.keys()].map(async (id) => {
        await this.#end(id, 'closed');
      }),
    );
    await this.#link.close();
  }

  // ------------------------------------------------------------------------ frames

  #onFrame(frame: Record<string, unknown>): void {
    const d = frame['d'] as Record<string, unknown> | undefined;
    switch (frame['a']) {
      case 'eventCall':
        this.#onCall(d as CallEvent).catch((err: unknown) => {
          this.#link.reportError(err instanceof Error ? err : new Error(String(err)), 'a call');
        });
        return;
      case 'eventCallCandidate': {
        const { callId, candidate } = d as { callId: string; candidate: IceCandidate };
        const held = this.#calls.get(callId);
        if (held === undefined) return;
        if (held.early !== undefined) held.early.push(candidate);
        else this.#addCandidate(held, candidate);
        return;
      }
      case 'eventCallCancelled': {
        const { callId } = d as { callId: string };
        void this.#end(callId, 'the caller gave up');
        return;
      }
      default:
        return;
    }
  }

  async #onCall(call: CallEvent): Promise<void> {
    const info: HostCallInfo = { callId: call.callId, from: call.from };
    const refuse = async (reason: string): Promise<void> => {
      await this.#link.request('rejectCall', { callId: call.callId, reason });
    };
    if (this.#calls.size >= this.#maxPeers) {
      await refuse('busy');
      return;
    }
    if (!this.#allow(call.from)) {
      await refuse('not allowed');
      return;
    }
    const peer = this.#createPeer({ iceServers: this.#iceServers });
    const held: Held = { info, peer, served: [], early: [], pending: [] };
    this.#calls.set(call.callId, held);
    peer.on('icecandidate', (c) => {
      if (held.pending !== undefined) held.pending.push(c);
      else trickle(this.#link, call.callId, c, () => this.#calls.has(call.callId));
    });
    let openChannels = 0;
    peer.on('datachannel', (dc) => {
      held.served.push(this.rpc.serve(dc.channel, { maxMessageSize: dc.maxMessageSize }));
      openChannels += 1;
      // The caller hung up: its channels close at once, while the peer connection may take
      // many seconds to notice (ICE consent). The call ends with its last channel.
      dc.channel.addEventListener('close', () => {
        openChannels -= 1;
        if (openChannels === 0) void this.#end(call.callId, 'the caller hung up');
      });
    });
    peer.on('connectionstatechange', (state) => {
      if (state === 'failed' || state === 'closed') void this.#end(call.callId, state);
    });
    try {
      await peer.setRemoteDescription(call.sdp);
      for (const c of held.early ?? []) this.#addCandidate(held, c);
      held.early = undefined;
      const answer = await peer.createAnswer();
      await peer.setLocalDescription(answer);
      const sdp: SessionDescription = { type: 'answer', sdp: answer.sdp ?? '' };
      await this.#link.request('answerCall', { callId: call.callId, sdp });
      const pending = held.pending ?? [];
      held.pending = undefined;
      for (const c of pending)
        trickle(this.#link, call.callId, c, () => this.#calls.has(call.callId));
      this.#events.emit('call', info);
    } catch (err) {
      await this.#end(call.callId, 'answer failed');
      throw err;
    }
  }

  #addCandidate(held: Held, candidate: IceCandidate): void {
    held.peer.addIceCandidate(candidate).catch((err: unknown) => {
      this.#link.reportError(err instanceof Error ? err : new Error(String(err)), 'a candidate');
    });
  }

  async #end(callId: string, reason: string): Promise<void> {
    const held = this.#calls.get(callId);
    if (held === undefined) return;
    this.#calls.delete(callId);
    for (const s of held.served) s.close();
    await held.peer.close();
    this.#events.emit('ended', { ...held.info, reason });
  }
}

/**
 * Register as a host and start answering calls (resolves once online). `register` adds the
 * RPC services first, so no call finds them missing.
 */
export async function serveHost(
  urls: string | readonly string[],
  options: HostAgentOptions,
  register: (rpc: RpcServer) => void = () => undefined,
): Promise<HostAgent> {
  const agent = new HostAgent(urls, options);
  register(agent.rpc);
  await agent.start();
  return agent;
}

function randomInstance(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function defaultOnError(error: Error, context: string): void {
  console.error(`switchboard host: ${context}:`, error);
}
