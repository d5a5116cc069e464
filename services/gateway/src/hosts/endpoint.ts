/**
 * One connection's calls: those it makes (callHost) and, when it is a host, those it
 * answers. Only this object knows which callIds belong to its connection, so an id seen or
 * guessed reaches nothing: every action names a call of its own connection or gets
 * CALL_NOT_FOUND.
 */
import { randomBytes } from 'node:crypto';
import {
  CALL_DEFAULT_TIMEOUT_MS,
  ProtocolError,
  hostGranted,
  type Caller,
  type EventFrameMessage,
  type IceCandidate,
  type RequestId,
  type SessionDescription,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { CallQueue, IncomingCall, IncomingCallEvents, OutgoingCall } from './call-queue.ts';
import type { HostLine, HostRegistry } from './host-registry.ts';
import type { Presence } from './presence.ts';

export interface CallEndpointDeps {
  queue: CallQueue;
  registry: HostRegistry;
  presence: Presence;
  log: Logger;
  /** Write an event to this connection's client. */
  send(event: EventFrameMessage): void;
  limits: {
    /** Calls this connection may have placed and not answered at once. */
    maxOutgoing: number;
    /** How long candidates still flow after an answer (ms). */
    lingerMs: number;
  };
  metrics: {
    calls: { inc(labels: { outcome: string }): void };
  };
}

/** Who the connection acts as for calls (its verified token). */
export interface CallPrincipal {
  userId: string;
  name?: string;
  /** The token's call grants. */
  call: readonly string[];
}

interface Outgoing {
  call: OutgoingCall;
  requestId: RequestId | undefined;
  cancel: AbortController;
  answered: boolean;
  linger?: NodeJS.Timeout;
}

interface Incoming {
  call: IncomingCall;
  answered: boolean;
  linger?: NodeJS.Timeout;
}

export class CallEndpoint implements HostLine {
  readonly connectionId: string;
  readonly #deps: CallEndpointDeps;
  readonly #out = new Map<string, Outgoing>();
  readonly #in = new Map<string, Incoming>();
  /** callHost requests still looking their host up (not queued yet). */
  readonly #starting = new Set<{ requestId: RequestId | undefined; cancel: AbortController }>();
  #ringing = 0;
  #host: { name: string; instance: string; remove: () => Promise<void> } | undefined;
  #closed = false;

  constructor(connectionId: string, deps: CallEndpointDeps) {
    this.connectionId = connectionId;
    this.#deps = deps;
  }

  get ringing(): number {
    return this.#ringing;
  }

  /** The host this connection serves, if it is one. */
  get host(): { name: string; instance: string } | undefined {
    return this.#host;
  }

  // ---------------------------------------------------------------------------- caller

  async callHost(
    who: CallPrincipal,
    d: { host: string; sdp: SessionDescription; timeoutMs?: number },
    requestId: RequestId | undefined,
  ): Promise<{ callId: string; sdp: SessionDescription }> {
    if (!hostGranted(who.call, d.host)) {
      throw new ProtocolError('PERMISSION_DENIED', 'the token does not grant calling this host');
    }
    if (d.sdp.type !== 'offer') throw new ProtocolError('JSON_FIELD_INVALID', '/d/sdp/type');
    let pending = 0;
    for (const o of this.#out.values()) if (!o.answered) pending += 1;
    if (pending >= this.#deps.limits.maxOutgoing) {
      throw new ProtocolError('CALL_LIMIT', 'too many calls of this connection wait for answers');
    }
    if (
      requestId !== undefined &&
      ([...this.#out.values()].some((o) => o.requestId === requestId) ||
        [...this.#starting].some((s) => s.requestId === requestId))
    ) {
      throw new ProtocolError('JSON_FIELD_INVALID', 'a call with this request id is in progress');
    }
    // Cancellable from here on (cancelCall may come while presence is looked up).
    const cancel = new AbortController();
    const starting = { requestId, cancel };
    this.#starting.add(starting);
    try {
      const presence = await this.#deps.presence.get(d.host);
      if (presence === undefined) throw new ProtocolError('HOST_UNAVAILABLE');
    } finally {
      this.#starting.delete(starting);
    }
    if (this.#closed) throw new ProtocolError('CANCELLED', 'the connection closed');
    if (cancel.signal.aborted) throw new ProtocolError('CANCELLED', 'the caller gave up');

    const callId = randomBytes(16).toString('hex');
    const from: Caller = {
      userId: who.userId,
      ...(who.name === undefined ? {} : { name: who.name }),
    };
    const call = this.#deps.queue.place(
      {
        callId,
        host: d.host,
        from,
        sdp: d.sdp,
        deadline: Date.now() + (d.timeoutMs ?? CALL_DEFAULT_TIMEOUT_MS),
        signal: cancel.signal,
      },
      {
        candidate: (candidate) => {
          // After callHostR, which the connection writes once `answer` settles (in
          // microtasks): the client learns the callId before its first candidate.
          setImmediate(() => {
            if (this.#out.has(callId)) {
              this.#deps.send({ a: 'eventCallCandidate', d: { callId, candidate } });
            }
          });
        },
      },
    );
    const entry: Outgoing = { call, requestId, cancel, answered: false };
    this.#out.set(callId, entry);
    try {
      const sdp = await call.answer;
      entry.answered = true;
      entry.linger = setTimeout(() => {
        this.#dropOut(callId);
      }, this.#deps.limits.lingerMs);
      this.#deps.metrics.calls.inc({ outcome: 'answered' });
      return { callId, sdp };
    } catch (err) {
      this.#dropOut(callId);
      this.#deps.metrics.calls.inc({
        outcome: err instanceof ProtocolError ? err.errorName : 'SYSTEM',
      });
      throw err;
    }
  }

  /** Give up the callHost request `requestId` (its reply becomes CANCELLED). */
  cancel(requestId: RequestId): void {
    for (const s of this.#starting) {
      if (s.requestId === requestId) {
        s.cancel.abort();
        return;
      }
    }
    for (const o of this.#out.values()) {
      if (o.requestId === requestId && !o.answered) {
        o.cancel.abort();
        return;
      }
    }
    throw new ProtocolError('CALL_NOT_FOUND', 'no call in progress with this request id');
  }

  #dropOut(callId: string): void {
    const o = this.#out.get(callId);
    if (o === undefined) return;
    this.#out.delete(callId);
    clearTimeout(o.linger);
    o.call.close();
  }

  // ------------------------------------------------------------------------------ host

  /** Serve `host`'s calls on this connection (its token grants the name). */
  async register(host: string, instance: string): Promise<void> {
    if (this.#host !== undefined) throw new ProtocolError('ROOM_ALREADY_JOINED', 'already a host');
    await this.#deps.presence.online(host, instance, this.connectionId);
    if (this.#closed) {
      await this.#deps.presence.release(host, instance, this.connectionId, false);
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    const remove = this.#deps.registry.add(host, this);
    this.#host = { name: host, instance, remove };
  }

  /** Stop serving: ringing offers go back to the queue; presence offline if `offline`. */
  async unregister(offline: boolean): Promise<void> {
    const h = this.#host;
    if (h === undefined) return;
    this.#host = undefined;
    await h.remove();
    for (const [callId, i] of this.#in) {
      if (i.answered) continue;
      this.#in.delete(callId);
      i.call.release();
    }
    this.#ringing = 0;
    await this.#deps.presence.release(h.name, h.instance, this.connectionId, offline);
  }

  /** The host's heartbeat (`ping`). */
  heartbeat(): void {
    const h = this.#host;
    if (h !== undefined) this.#deps.presence.heartbeat(h.name, h.instance, this.connectionId);
  }

  ring(call: IncomingCall): IncomingCallEvents | undefined {
    if (this.#closed || this.#host === undefined) return undefined;
    const { callId } = call.offer;
    if (this.#in.has(callId)) return undefined;
    this.#ringing += 1;
    this.#in.set(callId, { call, answered: false });
    this.#deps.send({
      a: 'eventCall',
      d: {
        callId,
        from: call.offer.from,
        sdp: call.offer.sdp,
        timeoutMs: Math.max(0, call.offer.deadline - Date.now()),
      },
    });
    return {
      candidate: (candidate) => {
        if (this.#in.has(callId)) {
          this.#deps.send({ a: 'eventCallCandidate', d: { callId, candidate } });
        }
      },
      cancelled: (reason) => {
        const i = this.#in.get(callId);
        if (i === undefined || i.answered) return;
        this.#in.delete(callId);
        this.#settled();
        this.#deps.send({ a: 'eventCallCancelled', d: { callId, reason } });
      },
    };
  }

  answer(callId: string, sdp: SessionDescription): void {
    const i = this.#in.get(callId);
    if (i === undefined || i.answered) throw new ProtocolError('CALL_NOT_FOUND');
    if (sdp.type !== 'answer' && sdp.type !== 'pranswer') {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/sdp/type');
    }
    i.answered = true;
    i.call.answer(sdp);
    this.#settled();
    i.linger = setTimeout(() => {
      this.#dropIn(callId);
    }, this.#deps.limits.lingerMs);
  }

  reject(callId: string, reason: string | undefined): void {
    const i = this.#in.get(callId);
    if (i === undefined || i.answered) throw new ProtocolError('CALL_NOT_FOUND');
    this.#in.delete(callId);
    i.call.reject(reason);
    this.#settled();
  }

  #settled(): void {
    this.#ringing = Math.max(0, this.#ringing - 1);
    if (this.#host !== undefined) this.#deps.registry.changed(this.#host.name);
  }

  #dropIn(callId: string): void {
    const i = this.#in.get(callId);
    if (i === undefined) return;
    this.#in.delete(callId);
    clearTimeout(i.linger);
    i.call.close();
  }

  // ----------------------------------------------------------------------------- both

  /** Trickle a candidate to the other side of one of this connection's calls. */
  candidate(callId: string, candidate: IceCandidate): void {
    const o = this.#out.get(callId);
    if (o !== undefined) {
      o.call.sendCandidate(candidate);
      return;
    }
    const i = this.#in.get(callId);
    if (i === undefined) throw new ProtocolError('CALL_NOT_FOUND');
    i.call.sendCandidate(candidate);
  }

  /**
   * The connection is gone: its placed calls are withdrawn, the host's ringing offers go
   * back to the queue, and presence goes offline now if `offline` (a normal close) or
   * after the read deadline unless the host comes back.
   */
  async close(offline: boolean): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#starting) s.cancel.abort();
    for (const [callId, o] of this.#out) {
      if (!o.answered) o.cancel.abort();
      this.#dropOut(callId);
    }
    await this.unregister(offline);
    for (const callId of [...this.#in.keys()]) this.#dropIn(callId);
  }
}
