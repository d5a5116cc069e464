/**
 * Connect two RtcPeers that live side by side (one process: tests, benchmarks, a local
 * agent): the offer, the answer and the trickled candidates go straight across, as a
 * signaling server would carry them. Resolves with the channel `label` as each side sees it,
 * open.
 */
import type { IceCandidateInit, PeerDataChannel, RtcPeer } from './peer.ts';

export interface ConnectOptions {
  label?: string;
  /** Candidates to pass on (default: all). */
  filter?: (c: IceCandidateInit) => boolean;
  /** Gives up (rejects with its reason). */
  signal?: AbortSignal;
}

/** Trickled candidates for one side: held until it has the remote description. */
class CandidateRelay {
  readonly #to: RtcPeer;
  #held: IceCandidateInit[] | undefined = [];
  /** Candidates the other side refused (the connection may still succeed with others). */
  readonly failures: unknown[] = [];

  constructor(to: RtcPeer) {
    this.#to = to;
  }

  add(c: IceCandidateInit): void {
    if (this.#held !== undefined) this.#held.push(c);
    else this.#send(c);
  }

  /** The side has its remote description: candidates go straight on from now. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const c of held) this.#send(c);
  }

  #send(c: IceCandidateInit): void {
    this.#to.addIceCandidate(c).catch((err: unknown) => this.failures.push(err));
  }
}

export async function connectPeers(
  offerer: RtcPeer,
  answerer: RtcPeer,
  opts: ConnectOptions = {},
): Promise<{ offered: PeerDataChannel; answered: PeerDataChannel }> {
  const filter = opts.filter ?? (() => true);
  const toAnswerer = new CandidateRelay(answerer);
  const toOfferer = new CandidateRelay(offerer);
  const offs = [
    offerer.on('icecandidate', (c) => {
      if (filter(c)) toAnswerer.add(c);
    }),
    answerer.on('icecandidate', (c) => {
      if (filter(c)) toOfferer.add(c);
    }),
  ];
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(opts.signal?.reason as Error);
    };
    if (opts.signal?.aborted === true) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const answered = new Promise<PeerDataChannel>((resolve) => {
      const off = answerer.on('datachannel', (dc) => {
        off();
        resolve(dc);
      });
    });
    const offered = offerer.createDataChannel(opts.label ?? 'rpc');
    const opened = new Promise<void>((resolve) => {
      if (offered.channel.readyState === 'open') resolve();
      else {
        offered.channel.addEventListener('open', () => {
          resolve();
        });
      }
    });
    const negotiate = async (): Promise<PeerDataChannel> => {
      // Descriptions without candidates: those trickle (and are held until each side has
      // the other's description, as a browser requires).
      const offer = await offerer.createOffer();
      await offerer.setLocalDescription(offer);
      await answerer.setRemoteDescription(offer);
      toAnswerer.release();
      const answer = await answerer.createAnswer();
      await answerer.setLocalDescription(answer);
      await offerer.setRemoteDescription(answer);
      toOfferer.release();
      const [channel] = await Promise.all([answered, opened]);
      return channel;
    };
    const channel = await Promise.race([negotiate(), aborted]);
    return { offered, answered: channel };
  } finally {
    for (const off of offs) off();
    if (onAbort !== undefined) opts.signal?.removeEventListener('abort', onAbort);
    // Settled or not, nobody waits on it any more.
    aborted.catch(() => undefined);
  }
}
