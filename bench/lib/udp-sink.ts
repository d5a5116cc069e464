/**
 * UDP sinks for the media benchmark: one socket per consumer, counting the RTP packets and
 * bytes it receives (RTCP, which shares the port with rtcp-mux, is counted apart) and, per
 * SSRC, the span of (extended) sequence numbers seen, so packets lost between the SFU and
 * the sink show up as a gap (an SFU rewrites sequence numbers without gaps for what it
 * forwards). mediasoup's bandwidth probes (padding on its probation SSRC) are counted apart.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { UdpAddress } from './rtp-sender.ts';

export interface SinkTotals {
  rtpPackets: number;
  rtpBytes: number;
  rtcpPackets: number;
  /** mediasoup's bandwidth probes (SSRC 1234, PT 127: padding, not media), not in rtpPackets. */
  probePackets: number;
  /** Sum over sinks and SSRCs of (highest − first sequence number + 1). */
  expectedBySeq: number;
  /** Sinks that received no RTP at all. */
  silent: number;
}

interface SeqSpan {
  first: number;
  highest: number;
}

/** mediasoup's RTP probation stream (RTC::RtpProbationSsrc, its payload type). */
const PROBATION_SSRC = 1234;
const PROBATION_PT = 127;
/**
 * Each sink's receive buffer (the kernel doubles it: 128 KiB, ~55 full-size datagrams, some
 * 0.3 s of one consumer's video). Kept below a sender's default send buffer (net.core.
 * wmem_default, 208 KiB) on purpose: over loopback a datagram counts against the sender's
 * send buffer until the receiver reads it, so a sink that falls behind with a bigger buffer
 * back-pressures the mediasoup worker (EAGAIN; libuv then queues in its memory without
 * bound) instead of losing packets as a network would. Here it drops at the sink instead.
 */
const RECV_BUFFER_BYTES = 64 * 1024;

export class UdpSinks {
  readonly #sockets: dgram.Socket[];
  readonly addresses: readonly UdpAddress[];
  readonly #rtpPackets: Float64Array;
  readonly #rtpBytes: Float64Array;
  readonly #rtcpPackets: Float64Array;
  readonly #probePackets: Float64Array;
  readonly #seq: Map<number, SeqSpan>[];
  #errors: Error[] = [];

  private constructor(sockets: dgram.Socket[]) {
    this.#sockets = sockets;
    this.addresses = sockets.map((s) => {
      const a = s.address();
      return { ip: a.address, port: a.port };
    });
    const n = sockets.length;
    this.#rtpPackets = new Float64Array(n);
    this.#rtpBytes = new Float64Array(n);
    this.#rtcpPackets = new Float64Array(n);
    this.#probePackets = new Float64Array(n);
    this.#seq = Array.from({ length: n }, () => new Map<number, SeqSpan>());
    sockets.forEach((s, i) => {
      s.on('message', (msg) => {
        this.#onMessage(i, msg);
      });
      s.on('error', (err) => {
        this.#errors.push(err);
      });
    });
  }

  /** `n` sockets bound to ephemeral ports on `ip`. */
  static async open(n: number, ip = '127.0.0.1'): Promise<UdpSinks> {
    const sockets: dgram.Socket[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind(0, ip, () => {
            s.off('error', reject);
            resolve();
          });
        });
        try {
          s.setRecvBufferSize(RECV_BUFFER_BYTES);
        } catch {
          // keep the default
        }
      }
    } catch (err) {
      for (const s of sockets) s.close();
      throw err;
    }
    return new UdpSinks(sockets);
  }

  get size(): number {
    return this.#sockets.length;
  }

  /** The receive buffer the kernel granted (the first socket's). */
  get recvBufferBytes(): number | undefined {
    try {
      return this.#sockets[0]?.getRecvBufferSize();
    } catch {
      return undefined;
    }
  }

  get errors(): readonly Error[] {
    return this.#errors;
  }

  #onMessage(i: number, msg: Buffer): void {
    if (msg.length < 12 || (msg[0] ?? 0) >> 6 !== 2) return;
    const pt = msg[1] ?? 0;
    // RFC 5761: with rtcp-mux, second bytes 192–223 are RTCP.
    if (pt >= 192 && pt <= 223) {
      this.#rtcpPackets[i] = (this.#rtcpPackets[i] ?? 0) + 1;
      return;
    }
    const ssrc = msg.readUInt32BE(8);
    if (ssrc === PROBATION_SSRC && (pt & 0x7f) === PROBATION_PT) {
      this.#probePackets[i] = (this.#probePackets[i] ?? 0) + 1;
      return;
    }
    this.#rtpPackets[i] = (this.#rtpPackets[i] ?? 0) + 1;
    this.#rtpBytes[i] = (this.#rtpBytes[i] ?? 0) + msg.length;
    const seq = msg.readUInt16BE(2);
    const spans = this.#seq[i];
    if (spans === undefined) return;
    const span = spans.get(ssrc);
    if (span === undefined) {
      spans.set(ssrc, { first: seq, highest: seq });
      return;
    }
    const delta = (seq - (span.highest & 0xffff)) & 0xffff;
    if (delta !== 0 && delta < 0x8000) span.highest += delta;
  }

  /** Totals over every sink, now. */
  totals(): SinkTotals {
    let rtpPackets = 0;
    let rtpBytes = 0;
    let rtcpPackets = 0;
    let probePackets = 0;
    let expectedBySeq = 0;
    let silent = 0;
    for (let i = 0; i < this.#sockets.length; i++) {
      const p = this.#rtpPackets[i] ?? 0;
      rtpPackets += p;
      rtpBytes += this.#rtpBytes[i] ?? 0;
      rtcpPackets += this.#rtcpPackets[i] ?? 0;
      probePackets += this.#probePackets[i] ?? 0;
      if (p === 0) silent++;
      for (const span of this.#seq[i]?.values() ?? [])
        expectedBySeq += span.highest - span.first + 1;
    }
    return { rtpPackets, rtpBytes, rtcpPackets, probePackets, expectedBySeq, silent };
  }

  /**
   * Datagrams the kernel dropped at the sinks' sockets (receive buffer full), from
   * /proc/net/udp; undefined where that cannot be read.
   */
  kernelDrops(): number | undefined {
    let text: string;
    try {
      text = readFileSync('/proc/net/udp', 'utf8');
    } catch {
      return undefined;
    }
    const ports = new Set(this.addresses.map((a) => a.port));
    let drops = 0;
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr tm->when retrnsmt uid timeout inode ref pointer drops
      const f = line.trim().split(/\s+/);
      const port = Number.parseInt(f[1]?.split(':')[1] ?? '', 16);
      if (ports.has(port)) drops += Number(f[12] ?? 0);
    }
    return drops;
  }

  /** RTP packets each sink received so far. */
  perSink(): number[] {
    return Array.from(this.#rtpPackets);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#sockets.map(async (s) => {
        await new Promise<void>((resolve) => {
          s.close(() => {
            resolve();
          });
        });
      }),
    );
  }
}
