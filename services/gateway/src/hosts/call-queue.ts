/**
 * The call queue: how a caller's offer reaches one answerer of a host, and how the two
 * sides' signaling (ringing, answer or refusal, trickled candidates, cancellation) flows
 * back and forth until the answer is in. Two implementations behind this one interface:
 *
 * - JetStreamCallQueue (jetstream-queue.ts): offers wait in a JetStream work queue, so they
 *   reach an answerer on any gateway, and survive a moment with none (an offline host that
 *   comes back inside the caller's timeout gets the call);
 * - MemoryCallQueue (memory-queue.ts): one process, for development (CALL_QUEUE=memory).
 *
 * Both give each offer to exactly one answerer; several answerers of one host share them.
 */
import type { Caller, CallOffer, IceCandidate, SessionDescription } from '@switchboard/protocol';

/** The caller's side of one call, from the moment its offer is queued. */
export interface OutgoingCall {
  readonly callId: string;
  /**
   * The answer's SDP; rejects with a ProtocolError: CALL_REJECTED (the host refused),
   * CALL_TIMEOUT (no answer by the deadline), CALL_LIMIT (too many offers wait for the host),
   * CANCELLED (the signal aborted: the offer is withdrawn everywhere).
   */
  readonly answer: Promise<SessionDescription>;
  /** Trickle a caller candidate to the host (held until an answerer has the offer). */
  sendCandidate(candidate: IceCandidate): void;
  /** Stop relaying the host's candidates (the caller's connection is gone, or enough time passed). */
  close(): void;
}

export interface OutgoingCallEvents {
  /** A host candidate (only after `answer` resolved, in order with it). */
  candidate(candidate: IceCandidate): void;
}

/** The host's side of one call, as an answerer receives it. */
export interface IncomingCall {
  readonly offer: CallOffer;
  /** Give the caller the answer; the offer is settled. */
  answer(sdp: SessionDescription): void;
  /** Refuse the call: the caller gets CALL_REJECTED; the offer is settled. */
  reject(reason?: string): void;
  /**
   * Give the offer back unanswered (the host went away): another answerer, or this one
   * when it returns, gets it while the caller still waits.
   */
  release(): void;
  /** Trickle a host candidate to the caller. */
  sendCandidate(candidate: IceCandidate): void;
  /** Stop relaying the caller's candidates. */
  close(): void;
}

export interface IncomingCallEvents {
  /** A caller candidate. */
  candidate(candidate: IceCandidate): void;
  /** The caller gave up (or its deadline passed) before the call was answered. */
  cancelled(reason: 'cancelled' | 'timeout'): void;
}

/** What serves a host's offers on this gateway: its connections registered for the host. */
export interface Answerer {
  /** Whether one of them can take another offer now. */
  hasRoom(): boolean;
  /**
   * Resolves at the next change that may give it room (a connection registered, an offer
   * settled), or when the signal aborts; never at once just because it has room now.
   */
  waitForRoom(signal: AbortSignal): Promise<void>;
  /**
   * An offer for the host: hand it to a connection (it answers, rejects or releases it
   * later) and return the events that connection wants, or undefined if none could take it
   * after all (the offer goes back to the queue).
   */
  take(call: IncomingCall): IncomingCallEvents | undefined;
}

export interface PlaceCall {
  callId: string;
  host: string;
  from: Caller;
  sdp: SessionDescription;
  /** When the caller stops waiting, epoch ms. */
  deadline: number;
  /** Aborting withdraws the offer everywhere (the answer rejects with CANCELLED). */
  signal: AbortSignal;
}

export interface CallQueue {
  /** Queue an offer. */
  place(call: PlaceCall, events: OutgoingCallEvents): OutgoingCall;
  /**
   * Take `host`'s offers for `answerer` until the returned function is called (which
   * resolves once no more offers will be handed to it).
   */
  serve(host: string, answerer: Answerer): () => Promise<void>;
  /** Make ready (streams, subscriptions); idempotent. */
  start(): Promise<void>;
  /** Stop: every outgoing call is cancelled, every served host stops. */
  close(): Promise<void>;
}
