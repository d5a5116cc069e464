/**
 * The call queue in one process (CALL_QUEUE=memory, for development and a single
 * gateway): the same contract as JetStreamCallQueue — each offer to one answerer, offers to
 * an absent host wait until their deadline, at most `maxPendingPerHost` per host — with
 * nothing leaving the process.
 */
import { ProtocolError, type CallOffer, type IceCandidate } from '@switchboard/protocol';
import type {
  Answerer,
  CallQueue,
  IncomingCall,
  IncomingCallEvents,
  OutgoingCall,
  OutgoingCallEvents,
  PlaceCall,
} from './call-queue.ts';

const MAX_HELD_CANDIDATES = 64;

interface Pending {
  offer: CallOffer;
  /** The caller side's reactions. */
  ringing(): void;
  answered(sdp: IncomingCall['offer']['sdp']): void;
  rejected(reason: string | undefined): void;
  candidateToCaller(c: IceCandidate): void;
  /** Set once an answerer took it. */
  host?: IncomingCallEvents;
  settled: boolean;
}

interface HostQueue {
  waiting: Pending[];
  /** Offers waiting or held by an answerer and not settled. */
  open: number;
  answerers: Set<Answerer>;
}

export class MemoryCallQueue implements CallQueue {
  readonly #maxPending: number;
  readonly #lingerMs: number;
  readonly #hosts = new Map<string, HostQueue>();
  readonly #outgoing = new Set<() => void>();
  readonly #serving = new Set<() => Promise<void>>();

  constructor(opts: { maxPendingPerHost: number; lingerMs: number }) {
    this.#maxPending = opts.maxPendingPerHost;
    this.#lingerMs = opts.lingerMs;
  }

  async start(): Promise<void> {
    // Nothing to prepare.
  }

  #queue(host: string): HostQueue {
    let q = this.#hosts.get(host);
    if (q === undefined) {
      q = { waiting: [], open: 0, answerers: new Set() };
      this.#hosts.set(host, q);
    }
    return q;
  }

  #forget(host: string, q: HostQueue): void {
    if (q.open === 0 && q.answerers.size === 0) this.#hosts.delete(host);
  }

  place(call: PlaceCall, events: OutgoingCallEvents): OutgoingCall {
    const q = this.#queue(call.host);
    let settle!: { resolve(sdp: CallOffer['sdp']): void; reject(err: ProtocolError): void };
    const answer = new Promise<CallOffer['sdp']>((resolve, reject) => {
      settle = { resolve, reject };
    });
    answer.catch(() => undefined);
    if (q.open >= this.#maxPending) {
      settle.reject(new ProtocolError('CALL_LIMIT', 'too many calls wait for this host'));
      this.#forget(call.host, q);
      return {
        callId: call.callId,
        answer,
        sendCandidate: () => undefined,
        close: () => undefined,
      };
    }
    let answered = false;
    let closed = false;
    let ringing = false;
    const heldOut: IceCandidate[] = [];
    const heldIn: IceCandidate[] = [];
    let lingerTimer: NodeJS.Timeout | undefined;
    const pending: Pending = {
      offer: {
        callId: call.callId,
        host: call.host,
        from: call.from,
        sdp: call.sdp,
        deadline: call.deadline,
      },
      settled: false,
      ringing: () => {
        ringing = true;
        for (const c of heldOut.splice(0)) pending.host?.candidate(c);
      },
      answered: (sdp) => {
        answered = true;
        clearTimeout(deadline);
        settle.resolve(sdp);
        for (const c of heldIn.splice(0)) events.candidate(c);
        lingerTimer = setTimeout(close, this.#lingerMs);
      },
      rejected: (reason) => {
        clearTimeout(deadline);
        settle.reject(new ProtocolError('CALL_REJECTED', reason ?? 'the host refused the call'));
        close();
      },
      candidateToCaller: (c) => {
        if (closed) return;
        if (answered) events.candidate(c);
        else if (heldIn.length < MAX_HELD_CANDIDATES) heldIn.push(c);
      },
    };
    const close = (): void => {
      closed = true;
      clearTimeout(lingerTimer);
      call.signal.removeEventListener('abort', cancel);
      this.#outgoing.delete(cancel);
    };
    const withdraw = (err: ProtocolError, reason: 'cancelled' | 'timeout'): void => {
      if (pending.settled) return;
      pending.settled = true;
      clearTimeout(deadline);
      q.open -= 1;
      const i = q.waiting.indexOf(pending);
      if (i >= 0) q.waiting.splice(i, 1);
      pending.host?.cancelled(reason);
      settle.reject(err);
      close();
      this.#forget(call.host, q);
    };
    const cancel = (): void => {
      withdraw(new ProtocolError('CANCELLED', 'the caller gave up'), 'cancelled');
    };
    const deadline = setTimeout(
      () => {
        withdraw(new ProtocolError('CALL_TIMEOUT'), 'timeout');
      },
      Math.max(0, call.deadline - Date.now()),
    );
    call.signal.addEventListener('abort', cancel, { once: true });
    this.#outgoing.add(cancel);
    q.open += 1;
    q.waiting.push(pending);
    this.#dispatch(call.host);
    return {
      callId: call.callId,
      answer,
      sendCandidate: (c) => {
        if (closed) return;
        if (ringing) pending.host?.candidate(c);
        else if (heldOut.length < MAX_HELD_CANDIDATES) heldOut.push(c);
      },
      close: () => {
        if (!answered) cancel();
        close();
      },
    };
  }

  /** Hand waiting offers of `host` to answerers with room, oldest first. */
  #dispatch(host: string): void {
    const q = this.#hosts.get(host);
    if (q === undefined) return;
    for (const answerer of q.answerers) {
      while (q.waiting.length > 0 && answerer.hasRoom()) {
        const pending = q.waiting.shift();
        if (pending === undefined) break;
        this.#offerTo(host, q, pending, answerer);
      }
    }
  }

  #offerTo(host: string, q: HostQueue, pending: Pending, answerer: Answerer): void {
    let closed = false;
    const settle = (): boolean => {
      if (pending.settled) return false;
      pending.settled = true;
      q.open -= 1;
      this.#forget(host, q);
      return true;
    };
    const incoming: IncomingCall = {
      offer: pending.offer,
      answer: (sdp) => {
        if (settle()) pending.answered(sdp);
      },
      reject: (reason) => {
        if (settle()) pending.rejected(reason);
        closed = true;
      },
      release: () => {
        if (pending.settled) return;
        pending.host = undefined;
        q.waiting.unshift(pending);
        closed = true;
        queueMicrotask(() => {
          this.#dispatch(host);
        });
      },
      sendCandidate: (c) => {
        if (!closed) pending.candidateToCaller(c);
      },
      close: () => {
        closed = true;
      },
    };
    const events = answerer.take(incoming);
    if (events === undefined) {
      q.waiting.unshift(pending);
      return;
    }
    pending.host = events;
    pending.ringing();
  }

  serve(host: string, answerer: Answerer): () => Promise<void> {
    const q = this.#queue(host);
    q.answerers.add(answerer);
    const stop = new AbortController();
    // Offers wait for room: each time this answerer may have some, dispatch again.
    const loop = (async () => {
      while (!stop.signal.aborted) {
        this.#dispatch(host);
        await answerer.waitForRoom(stop.signal);
      }
    })();
    const stopper = async (): Promise<void> => {
      this.#serving.delete(stopper);
      stop.abort();
      q.answerers.delete(answerer);
      await loop;
      this.#forget(host, q);
    };
    this.#serving.add(stopper);
    return stopper;
  }

  async close(): Promise<void> {
    for (const cancel of [...this.#outgoing]) cancel();
    await Promise.all([...this.#serving].map((stop) => stop()));
  }
}
