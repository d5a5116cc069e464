/**
 * The distributed call queue (see call-queue.ts), on NATS:
 *
 * - An offer is a message in the JetStream work-queue stream `callStream(p)`, subject
 *   `<p>.calls.offer.<host>` (memory storage: offers live seconds). The stream keeps at most
 *   `maxPendingPerHost` of one host's offers (discard new per subject): the caller over it
 *   gets CALL_LIMIT. Its max age is the longest call timeout, so nothing lingers.
 * - Every answerer of a host, on any gateway, pulls from one durable consumer of the host
 *   (`hostConsumer`), one offer at a time and only while it has room: each offer goes to
 *   exactly one of them. The consumer's `max_ack_pending` caps the offers being rung at once.
 *   An answerer keeps an offer it holds alive (`working`); when it dies the offer is
 *   delivered again after `ackWaitMs`, to another answerer or to the same host back.
 * - The two sides' gateways then talk on `<p>.calls.sig.<callId>.caller|host` (core NATS):
 *   ringing, answer or refusal, candidates, cancel. The caller's gateway withdraws an
 *   offer it gives up (deletes the message, tells the host side).
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Bus, BusSubscription } from '@switchboard/bus';
import {
  CALL_MAX_TIMEOUT_MS,
  ProtocolError,
  callOffer,
  callSignal,
  callStream,
  hostConsumer,
  hostSubjects,
  type CallOffer,
  type CallSignal,
  type IceCandidate,
  type SessionDescription,
} from '@switchboard/protocol';
import { sleep, type Logger } from '@switchboard/service';
import type {
  Answerer,
  CallQueue,
  IncomingCall,
  IncomingCallEvents,
  OutgoingCall,
  OutgoingCallEvents,
  PlaceCall,
} from './call-queue.ts';

export interface JetStreamCallQueueOptions {
  /** Offers one host may have waiting or ringing at once (CALL_MAX_PENDING_PER_HOST). */
  maxPendingPerHost: number;
  /** How long a side keeps relaying candidates after the answer (ms). */
  lingerMs: number;
  /** Redelivery delay of an offer whose answerer went silent (ms). */
  ackWaitMs?: number;
}

/** Candidates a side holds for the other before it may send them. */
const MAX_HELD_CANDIDATES = 64;
/** How long one pull waits for an offer before asking again (ms). */
const PULL_EXPIRES_MS = 2000;
const NS_PER_MS = 1_000_000;

export class JetStreamCallQueue implements CallQueue {
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #opts: Required<JetStreamCallQueueOptions>;
  readonly #stream: string;
  readonly #closing = new AbortController();
  /** Cancels each call placed and not settled yet. */
  readonly #outgoing = new Set<() => void>();
  readonly #serving = new Set<() => Promise<void>>();
  #ready: Promise<{ js: JetStreamClient; jsm: JetStreamManager }> | undefined;

  constructor(bus: Bus, log: Logger, opts: JetStreamCallQueueOptions) {
    this.#bus = bus;
    this.#log = log.child({ component: 'call-queue' });
    this.#opts = { ackWaitMs: 10_000, ...opts };
    this.#stream = callStream(bus.prefix);
  }

  async start(): Promise<void> {
    await this.#jetstream();
  }

  /** The stream exists as configured (created, or its limits updated). */
  async #jetstream(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    this.#ready ??= (async () => {
      await this.#bus.whenConnected(this.#closing.signal);
      const nc = this.#bus.connection;
      if (nc === undefined) throw new ProtocolError('SERVICE_UNAVAILABLE', 'no NATS connection');
      const jsm = await jetstreamManager(nc, { timeout: 5000 });
      const config = {
        name: this.#stream,
        subjects: [hostSubjects.offers(this.#bus.prefix)],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.Memory,
        discard: DiscardPolicy.New,
        discard_new_per_subject: true,
        max_msgs_per_subject: this.#opts.maxPendingPerHost,
        max_age: (CALL_MAX_TIMEOUT_MS + 10_000) * NS_PER_MS,
        duplicate_window: 60_000 * NS_PER_MS,
      };
      try {
        await jsm.streams.info(this.#stream);
        await jsm.streams.update(this.#stream, config);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await jsm.streams.add(config);
        this.#log.info({ stream: this.#stream }, 'call stream created');
      }
      return { js: jetstream(nc, { timeout: 5000 }), jsm };
    })();
    try {
      return await this.#ready;
    } catch (err) {
      this.#ready = undefined;
      throw err;
    }
  }

  // ------------------------------------------------------------------------ the caller

  place(call: PlaceCall, events: OutgoingCallEvents): OutgoingCall {
    const p = this.#bus.prefix;
    const done = new AbortController();
    /** Mutated by the callbacks below. */
    const st = { answered: false, ringing: false };
    let seq: number | undefined;
    const heldOut: IceCandidate[] = [];
    /** Host candidates that came before the answer (given to the caller after it). */
    const heldIn: IceCandidate[] = [];
    let lingerTimer: NodeJS.Timeout | undefined;
    let sub: BusSubscription | undefined;

    let settle!: { resolve(sdp: SessionDescription): void; reject(err: ProtocolError): void };
    const answer = new Promise<SessionDescription>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // The caller may never read `answer` (its connection closed first).
    answer.catch(() => undefined);

    const close = (): void => {
      clearTimeout(lingerTimer);
      sub?.unsubscribe();
      sub = undefined;
      this.#outgoing.delete(onAbort);
    };
    const toHost = (signal: CallSignal): void => {
      this.#publish(hostSubjects.signal(p, call.callId, 'host'), signal);
    };
    /** Give up before the answer: withdraw the offer and tell its answerer. */
    const withdraw = (err: ProtocolError, reason: 'cancelled' | 'timeout'): void => {
      if (st.answered || done.signal.aborted) return;
      done.abort();
      clearTimeout(deadline);
      settle.reject(err);
      close();
      // The offer out of the stream first, then the word to an answerer that holds it: one
      // that pulls it meanwhile finds it gone (see #deliver) or is subscribed by then.
      void (async () => {
        if (seq !== undefined) await this.#deleteOffer(seq);
        toHost({ kind: 'cancel', reason });
      })();
    };

    const deadline = setTimeout(
      () => {
        withdraw(new ProtocolError('CALL_TIMEOUT'), 'timeout');
      },
      Math.max(0, call.deadline - Date.now()),
    );
    const onAbort = (): void => {
      withdraw(new ProtocolError('CANCELLED', 'the caller gave up'), 'cancelled');
    };
    call.signal.addEventListener('abort', onAbort, { once: true });
    this.#outgoing.add(onAbort);
    done.signal.addEventListener('abort', () => {
      call.signal.removeEventListener('abort', onAbort);
    });

    sub = this.#bus.subscribe(
      hostSubjects.signal(p, call.callId, 'caller'),
      callSignal,
      (signal) => {
        switch (signal.kind) {
          case 'ringing':
            if (st.ringing) return;
            st.ringing = true;
            for (const candidate of heldOut.splice(0)) toHost({ kind: 'candidate', candidate });
            return;
          case 'answer':
            if (st.answered || done.signal.aborted) return;
            st.answered = true;
            st.ringing = true;
            clearTimeout(deadline);
            settle.resolve(signal.sdp);
            for (const candidate of heldOut.splice(0)) toHost({ kind: 'candidate', candidate });
            for (const candidate of heldIn.splice(0)) events.candidate(candidate);
            lingerTimer = setTimeout(close, this.#opts.lingerMs);
            return;
          case 'reject':
            if (st.answered || done.signal.aborted) return;
            done.abort();
            clearTimeout(deadline);
            settle.reject(
              new ProtocolError('CALL_REJECTED', signal.reason ?? 'the host refused the call'),
            );
            close();
            return;
          case 'candidate':
            // The answer and the candidates after it come from one publisher, in order.
            if (st.answered) events.candidate(signal.candidate);
            else if (heldIn.length < MAX_HELD_CANDIDATES) heldIn.push(signal.candidate);
            return;
          case 'cancel':
            return;
        }
      },
    );

    const offer: CallOffer = {
      callId: call.callId,
      host: call.host,
      from: call.from,
      sdp: call.sdp,
      deadline: call.deadline,
    };
    void (async () => {
      try {
        const { js } = await this.#jetstream();
        const ack = await js.publish(hostSubjects.offer(p, call.host), JSON.stringify(offer), {
          msgID: call.callId,
          timeout: 5000,
        });
        seq = ack.seq;
        // Given up while the offer was being stored: withdraw it now.
        if (done.signal.aborted && !st.answered) {
          await this.#deleteOffer(ack.seq);
          toHost({ kind: 'cancel', reason: 'cancelled' });
        }
      } catch (err) {
        if (done.signal.aborted) return;
        done.abort();
        clearTimeout(deadline);
        close();
        if (isPerSubjectLimit(err)) {
          settle.reject(new ProtocolError('CALL_LIMIT', 'too many calls wait for this host'));
        } else {
          // Maybe the stream went (an operator deleted it): the next call makes it again.
          this.#ready = undefined;
          this.#log.warn({ err, host: call.host }, 'offer not queued');
          settle.reject(new ProtocolError('SERVICE_UNAVAILABLE', 'the call queue is unavailable'));
        }
      }
    })();

    return {
      callId: call.callId,
      answer,
      sendCandidate: (candidate) => {
        if (sub === undefined) return;
        if (st.ringing) toHost({ kind: 'candidate', candidate });
        else if (heldOut.length < MAX_HELD_CANDIDATES) heldOut.push(candidate);
      },
      close: () => {
        if (!st.answered) onAbort();
        close();
      },
    };
  }

  async #deleteOffer(seq: number): Promise<void> {
    try {
      const { jsm } = await this.#jetstream();
      await jsm.streams.deleteMessage(this.#stream, seq, false);
    } catch (err) {
      // Already taken and acked, or expired: nothing left to withdraw.
      this.#log.debug({ err, seq }, 'withdrawn offer was already gone');
    }
  }

  #publish(subject: string, signal: CallSignal): void {
    try {
      this.#bus.publish(subject, signal);
    } catch (err) {
      this.#log.debug({ err, subject }, 'call signal not sent');
    }
  }

  // ---------------------------------------------------------------------- the answerer

  serve(host: string, answerer: Answerer): () => Promise<void> {
    const stop = new AbortController();
    const loop = this.#serveLoop(host, answerer, stop.signal).catch((err: unknown) => {
      if (!stop.signal.aborted) this.#log.error({ err, host }, 'answerer loop failed');
    });
    const stopper = async (): Promise<void> => {
      this.#serving.delete(stopper);
      stop.abort();
      await loop;
    };
    this.#serving.add(stopper);
    return stopper;
  }

  async #serveLoop(host: string, answerer: Answerer, signal: AbortSignal): Promise<void> {
    const p = this.#bus.prefix;
    const durable = hostConsumer(host);
    let failures = 0;
    // A function, not the property: it changes while this loop awaits.
    const stopped = (): boolean => signal.aborted;
    while (!stopped()) {
      try {
        const { js, jsm } = await this.#jetstream();
        await jsm.consumers.add(this.#stream, {
          durable_name: durable,
          filter_subject: hostSubjects.offer(p, host),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: this.#opts.ackWaitMs * NS_PER_MS,
          max_ack_pending: this.#opts.maxPendingPerHost,
          // A host nobody serves for a day: its consumer goes (offers wait in the stream).
          inactive_threshold: 86_400_000 * NS_PER_MS,
        });
        const consumer = await js.consumers.get(this.#stream, durable);
        failures = 0;
        while (!stopped()) {
          if (!answerer.hasRoom()) {
            await answerer.waitForRoom(signal);
            continue;
          }
          const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
          if (msg === null) continue;
          if (stopped()) {
            msg.nak();
            return;
          }
          await this.#deliver(msg, answerer);
        }
      } catch (err) {
        if (stopped()) return;
        failures += 1;
        this.#log.warn({ err, host }, 'answerer loop: pulling offers failed; retrying');
        await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)), signal);
      }
    }
  }

  /** One offer pulled from the stream, for this gateway's answerer. */
  async #deliver(msg: JsMsg, answerer: Answerer): Promise<void> {
    let raw: unknown;
    try {
      raw = msg.json();
    } catch {
      raw = undefined;
    }
    const parsed = callOffer.parse(raw);
    if (!parsed.ok) {
      // Only gateways publish here; a bad one is dropped for good, never retried.
      this.#log.warn({ issues: parsed.issues }, 'malformed offer dropped');
      msg.term('malformed offer');
      return;
    }
    const offer = parsed.value;
    if (offer.deadline <= Date.now()) {
      msg.ack();
      return;
    }
    const p = this.#bus.prefix;
    /** Mutated by the callbacks below. */
    const st: { settled: boolean; events?: IncomingCallEvents } = { settled: false };
    let lingerTimer: NodeJS.Timeout | undefined;
    const heldIn: IceCandidate[] = [];
    const toCaller = (signal: CallSignal): void => {
      this.#publish(hostSubjects.signal(p, offer.callId, 'caller'), signal);
    };
    // Keep the offer ours while the host thinks (ack_wait is short so a dead gateway's
    // offers come back quickly).
    const keepAlive = setInterval(
      () => {
        msg.working();
      },
      Math.max(500, Math.floor(this.#opts.ackWaitMs / 3)),
    );
    const settle = (how: 'ack' | 'nak'): void => {
      if (st.settled) return;
      st.settled = true;
      clearInterval(keepAlive);
      clearTimeout(expiry);
      if (how === 'ack') msg.ack();
      else msg.nak();
    };
    let sub: BusSubscription | undefined;
    const close = (): void => {
      clearTimeout(lingerTimer);
      sub?.unsubscribe();
      sub = undefined;
    };
    const expiry = setTimeout(
      () => {
        if (st.settled) return;
        settle('ack');
        st.events?.cancelled('timeout');
        close();
      },
      Math.max(0, offer.deadline - Date.now()),
    );
    sub = this.#bus.subscribe(hostSubjects.signal(p, offer.callId, 'host'), callSignal, (s) => {
      if (s.kind === 'candidate') {
        if (st.events !== undefined) st.events.candidate(s.candidate);
        else if (heldIn.length < MAX_HELD_CANDIDATES) heldIn.push(s.candidate);
      } else if (s.kind === 'cancel' && !st.settled) {
        settle('ack');
        st.events?.cancelled(s.reason);
        close();
      }
    });
    // The caller's cancel must find this subscription: it is on the server before the host
    // is rung; and an offer withdrawn before that (deleted from the stream) is not rung.
    let gone: boolean;
    try {
      await this.#bus.connection?.flush();
      const { jsm } = await this.#jetstream();
      gone = (await jsm.streams.getMessage(this.#stream, { seq: msg.seq })) === null;
    } catch (err) {
      // Not found: withdrawn. Anything else: ring it (the caller's cancel still reaches us).
      gone = isNotFound(err);
      if (!gone) this.#log.debug({ err }, 'could not check an offer; ringing it');
    }
    if (gone) {
      settle('ack');
      close();
      return;
    }
    if (st.settled) {
      close();
      return;
    }
    const incoming: IncomingCall = {
      offer,
      answer: (sdp) => {
        if (st.settled) return;
        toCaller({ kind: 'answer', sdp });
        settle('ack');
        lingerTimer = setTimeout(close, this.#opts.lingerMs);
      },
      reject: (reason) => {
        if (st.settled) return;
        toCaller(reason === undefined ? { kind: 'reject' } : { kind: 'reject', reason });
        settle('ack');
        close();
      },
      release: () => {
        if (st.settled) return;
        settle('nak');
        close();
      },
      sendCandidate: (candidate) => {
        if (sub !== undefined) toCaller({ kind: 'candidate', candidate });
      },
      close,
    };
    const events = answerer.take(incoming);
    if (events === undefined) {
      incoming.release();
      return;
    }
    st.events = events;
    toCaller({ kind: 'ringing' });
    for (const c of heldIn.splice(0)) events.candidate(c);
  }

  async close(): Promise<void> {
    this.#closing.abort();
    for (const cancel of [...this.#outgoing]) cancel();
    await Promise.all([...this.#serving].map((stop) => stop()));
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

/** The stream refused the offer: the host's per-subject limit is reached. */
function isPerSubjectLimit(err: unknown): boolean {
  return err instanceof Error && /maximum messages per subject/i.test(err.message);
}
