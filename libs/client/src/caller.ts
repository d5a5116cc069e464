/**
 * Call hosts by name: sign in (`authenticate`), then `call(host)` sends an SDP offer through
 * the gateways' call queue and resolves with an open data channel to the host and an RPC
 * client on it:
 *
 *   const caller = await signIn('wss://gw/api', { token });          // token grants `call`
 *   const call = await caller.call('robot-7', { timeoutMs: 20_000 });
 *   const pong = await call.rpc.unary(Agent.methods.ping, { seq: 1 });
 *   call.close();
 *
 * Aborting `signal` withdraws the offer everywhere (`cancelCall`). The call is peer to peer:
 * it outlives the caller's link to the gateways.
 */
import type { Static } from 'typebox';
import type { AuthenticateReply } from '@switchboard/protocol';
import {
  CALL_DEFAULT_TIMEOUT_MS,
  ProtocolError,
  isProtocolError,
  type ErrorName,
  type HostPresence,
  type IceCandidate,
  type SessionDescription,
} from '@switchboard/protocol';
import {
  BrowserPeer,
  RpcClient,
  type IceCandidateInit,
  type PeerDataChannel,
  type RtcPeer,
} from '@switchboard/rpc';
import type { Connection } from './connection.ts';
import type { IceServers, PeerFactory } from './host-agent.ts';
import { trickle } from './trickle.ts';
import { SignalingLink, parseLinkReply, type LinkOptions, type LinkState } from './link.ts';

/** Outcomes of a cancelCall after which the offer is withdrawn, or there is none to. */
const WITHDRAWN: ReadonlySet<ErrorName> = new Set([
  'SERVICE_UNAVAILABLE',
  'TIMEOUT',
  'CANCELLED',
  'CALL_NOT_FOUND',
]);

export interface CallerOptions extends LinkOptions {
  /** Peer connections of calls (default: the browser's RTCPeerConnection). */
  createPeer?: PeerFactory;
}

export interface CallOptions {
  /** How long to wait for the host's answer (default 30 s; the gateway caps it at 120 s). */
  timeoutMs?: number;
  /** How long the data channel may take to open after the answer (default 15 s). */
  connectTimeoutMs?: number;
  /** Withdraws the offer (before the answer) or ends the call. */
  signal?: AbortSignal;
  /** The data channel's label (default "rpc"). */
  label?: string;
}

/** An answered call: its peer connection, the open channel, and an RPC client on it. */
export class HostCall {
  readonly callId: string;
  readonly host: string;
  readonly peer: RtcPeer;
  readonly channel: PeerDataChannel;
  readonly rpc: RpcClient;

  constructor(callId: string, host: string, peer: RtcPeer, channel: PeerDataChannel) {
    this.callId = callId;
    this.host = host;
    this.peer = peer;
    this.channel = channel;
    this.rpc = new RpcClient(channel.channel, { maxMessageSize: peer.maxMessageSize });
  }

  /** Hang up: the RPC client, the channel and the peer connection close. */
  async close(): Promise<void> {
    this.rpc.close();
    await this.peer.close();
  }
}

interface Placing {
  /** Candidates from the host, held until the answer is applied. */
  early: IceCandidate[] | undefined;
  peer: RtcPeer;
}

export class Caller {
  readonly #link: SignalingLink;
  readonly #createPeer: PeerFactory;
  readonly #placing = new Map<string, Placing>();
  #iceServers: IceServers = [];
  #userId: string | undefined;

  constructor(urls: string | readonly string[], options: CallerOptions) {
    this.#createPeer = options.createPeer ?? ((config) => new BrowserPeer(config));
    this.#link = new SignalingLink(
      urls,
      options,
      async (conn, token, signal) => {
        const r = parseLinkReply(
          'authenticate',
          await conn.request(
            'authenticate',
            { bearer: token },
            { timeoutMs: options.connectTimeoutMs ?? 10_000, signal },
          ),
        ) as Static<typeof AuthenticateReply>;
        this.#userId = r.userId;
        this.#iceServers = r.iceServers ?? [];
        return { intervalMs: 10_000, readDeadlineMs: 25_000 };
      },
      (frame) => {
        this.#onFrame(frame);
      },
    );
  }

  get userId(): string {
    if (this.#userId === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    return this.#userId;
  }

  get state(): LinkState {
    return this.#link.state;
  }

  async start(): Promise<void> {
    await this.#link.start();
  }

  async close(): Promise<void> {
    await this.#link.close();
  }

  /** The hosts this token may call, with their presence (one page). */
  async listHosts(
    opts: { after?: string; limit?: number } = {},
  ): Promise<{ hosts: HostPresence[]; next?: string }> {
    return (await this.#link.request('listHosts', opts)) as {
      hosts: HostPresence[];
      next?: string;
    };
  }

  /** Call `host`: resolves once the data channel to it is open. */
  async call(host: string, opts: CallOptions = {}): Promise<HostCall> {
    const timeoutMs = opts.timeoutMs ?? CALL_DEFAULT_TIMEOUT_MS;
    const peer = this.#createPeer({ iceServers: this.#iceServers });
    let callId: string | undefined;
    const local: IceCandidateInit[] = [];
    peer.on('icecandidate', (c) => {
      if (callId === undefined) local.push(c);
      else trickle(this.#link, callId, c);
    });
    try {
      const channel = peer.createDataChannel(opts.label ?? 'rpc');
      const opened = new Promise<void>((resolve, reject) => {
        if (channel.channel.readyState === 'open') resolve();
        channel.channel.addEventListener('open', () => {
          resolve();
        });
        channel.channel.addEventListener('close', () => {
          reject(new ProtocolError('SERVICE_UNAVAILABLE', 'the data channel closed'));
        });
      });
      opened.catch(() => undefined);
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      const sdp: SessionDescription = { type: 'offer', sdp: offer.sdp ?? '' };
      let sent: { conn: Connection; id: number } | undefined;
      const onAbort = (): void => {
        // Withdraw the offer everywhere; the callHost request then fails CANCELLED. A request
        // of its own (with an id), so that its reply is read as one, not as a stray frame.
        if (sent === undefined) return;
        sent.conn
          .request('cancelCall', { id: sent.id }, { timeoutMs: 5000 })
          .catch((err: unknown) => {
            // Not connected (the gateway withdraws the offer with the connection), or the call
            // was answered or ended meanwhile: nothing left to withdraw. Anything else is told.
            if (isProtocolError(err) && WITHDRAWN.has(err.errorName)) return;
            this.#link.reportError(
              err instanceof Error ? err : new Error(String(err)),
              'withdrawing a call',
            );
          });
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      let reply: { callId: string; sdp: SessionDescription };
      try {
        reply = (await this.#link.request(
          'callHost',
          { host, sdp, timeoutMs },
          {
            timeoutMs: timeoutMs + 5000,
            ...(opts.signal === undefined ? {} : { signal: opts.signal }),
            onSent: (conn, id) => {
              sent = { conn, id };
            },
          },
        )) as { callId: string; sdp: SessionDescription };
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      opts.signal?.throwIfAborted();
      const placing: Placing = { early: [], peer };
      this.#placing.set(reply.callId, placing);
      callId = reply.callId;
      try {
        await peer.setRemoteDescription(reply.sdp);
        for (const c of placing.early ?? []) await peer.addIceCandidate(c);
        placing.early = undefined;
        for (const c of local.splice(0)) trickle(this.#link, reply.callId, c);
        await withTimeout(opened, opts.connectTimeoutMs ?? 15_000, opts.signal);
      } finally {
        this.#placing.delete(reply.callId);
      }
      return new HostCall(reply.callId, host, peer, channel);
    } catch (err) {
      await peer.close();
      throw err;
    }
  }

  #onFrame(frame: Record<string, unknown>): void {
    if (frame['a'] !== 'eventCallCandidate') return;
    const { callId, candidate } = frame['d'] as { callId: string; candidate: IceCandidate };
    const placing = this.#placing.get(callId);
    if (placing === undefined) return;
    if (placing.early !== undefined) placing.early.push(candidate);
    else {
      placing.peer.addIceCandidate(candidate).catch((err: unknown) => {
        this.#link.reportError(err instanceof Error ? err : new Error(String(err)), 'a candidate');
      });
    }
  }
}

/** Sign in as a caller (resolves once signed in). */
export async function signIn(
  urls: string | readonly string[],
  options: CallerOptions,
): Promise<Caller> {
  const caller = new Caller(urls, options);
  await caller.start();
  return caller;
}

async function withTimeout(p: Promise<void>, ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new ProtocolError('TIMEOUT', 'the data channel did not open in time'));
        }, ms);
        onAbort = () => {
          reject(new ProtocolError('CANCELLED', 'the call was given up'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}
