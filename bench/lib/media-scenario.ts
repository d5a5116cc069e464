/**
 * What `bench/media.ts` measures: a scenario forwards one sender's RTP from a producer to N
 * consumers on one mediasoup worker. The harness owns the RTP sender and the UDP sinks (one
 * per consumer) and times everything; a scenario only sets up the forwarding and says how
 * much CPU the processes doing it have used.
 */
import type { SrtpKeys } from '@switchboard/devstack';
import type { UdpAddress } from './rtp-sender.ts';

/** One RTP stream the sender sends (the scenario makes one producer of each). */
export interface StreamSpec {
  kind: 'audio' | 'video';
  /** 'video/VP8' or 'audio/opus'. */
  mimeType: string;
  clockRate: number;
  channels?: number;
  payloadType: number;
  ssrc: number;
  /** The feedback the sender answers: PLI and FIR for video (it sends a key frame). */
  rtcpFeedback: { type: string; parameter?: string }[];
}

export interface ScenarioSetup {
  /** One consumer per sink (of every stream): consumer i sends its RTP and RTCP to sinks[i]. */
  sinks: readonly UdpAddress[];
  streams: readonly StreamSpec[];
  /**
   * SRTP: the keys the sender encrypts with (the producers' transport takes only what opens
   * with them), and every consumer's transport speaks SRTP in the same suite, under keys of
   * its own. Undefined: plain RTP throughout.
   */
  srtp: SrtpKeys | undefined;
}

export interface ScenarioRun {
  /**
   * Where the sender sends its RTP: a PlainTransport with comedia and rtcp-mux, so RTCP from
   * the SFU (PLI) goes back to the sender's socket.
   */
  producerTarget: UdpAddress;
  /**
   * CPU time (user + system, ms) used so far by each process doing the forwarding, by name
   * ("worker", "media service", …); the harness takes the difference over its window and
   * adds them up. Read it at once where possible (`procRunTimeMs(pid)` of `proc-cpu.ts`): a
   * round trip to a busy process blurs the window's edges (the harness flags over 50 ms).
   */
  cpuTimeMs(): Promise<Record<string, number>>;
  /**
   * Optional: RTP packets the producers received and the consumers sent since `setup`
   * (mediasoup's stats), to tell ingress, SFU and sink losses apart.
   */
  mediasoupCounts?(): Promise<{ producerPackets: number; consumerPackets: number }>;
  /** Close everything `setup` made (the sinks and the sender are the harness's). */
  teardown(): Promise<void>;
}

export interface Scenario {
  /** Short name: the column heading and the key in the JSON result ('bare', 'platform'). */
  readonly name: string;
  /** One line on what runs. */
  readonly description: string;
  /** Once before the first `setup` (start a worker, a platform). */
  start(): Promise<void>;
  /** Forwarding from a producer of each stream to one consumer per sink, ready for RTP. */
  setup(setup: ScenarioSetup): Promise<ScenarioRun>;
  /** Once at the end, also after a failure (whatever `start` got to). */
  close(): Promise<void>;
  /** Facts for the JSON result (versions, pids, settings). */
  info(): Record<string, unknown>;
}

/** The RTP parameters of a producer of `s` (what the sender sends). */
export function rtpParametersOf(s: StreamSpec) {
  return {
    codecs: [
      {
        mimeType: s.mimeType,
        payloadType: s.payloadType,
        clockRate: s.clockRate,
        ...(s.channels === undefined ? {} : { channels: s.channels }),
        rtcpFeedback: s.rtcpFeedback,
      },
    ],
    encodings: [{ ssrc: s.ssrc }],
    rtcp: { cname: 'bench', reducedSize: true },
  };
}
