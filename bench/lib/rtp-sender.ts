/**
 * A synthetic RTP sender over UDP for the media benchmark: what a browser's VP8 (and,
 * optionally, Opus) stream looks like to an SFU, without an encoder.
 *
 * Video: `fps` frames a second at `bitrate` on average, each frame split into packets of at
 * most `maxPacketBytes` (RTP header included, sizes evened out as libwebrtc does), sent as
 * one burst when the frame is due. Every packet carries a VP8 payload descriptor (RFC 7741:
 * X and I set, a 15-bit PictureID that counts frames, S on the first packet of a frame); the
 * first packet of a frame starts with a VP8 frame header (key frames: the 10-byte header with
 * the start code and 1280×720), so an SFU that parses VP8 sees valid key and delta frames.
 * The marker bit is set on the last packet of a frame; timestamps run at 90 kHz. A key frame
 * is sent first, every `keyFrameIntervalS` seconds (0: never again unless asked) at
 * `keyFrameScale` times the size of a delta frame, and on the next frame after a PLI or FIR
 * arrives (the SFU's RTCP comes back to the sending socket: comedia).
 * Audio: Opus, one packet of `audioBytes` payload every 20 ms (48 kHz clock).
 *
 * Frames are paced by a timer against the start time (a late timer sends every frame that
 * is due, so the long-run rate holds). Counts are of packets handed to the kernel, less any
 * it refused.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

export interface UdpAddress {
  ip: string;
  port: number;
}

export interface RtpSenderOptions {
  target: UdpAddress;
  /** What each RTP packet becomes before it is sent (SRTP); default: sent as it is. */
  protect?: (rtp: Buffer) => Buffer;
  video: {
    payloadType: number;
    ssrc: number;
    /** Average bits per second of the video payload (RTP headers not counted). */
    bitrate: number;
    fps: number;
    /** Seconds between periodic key frames; 0: only the first and those asked for. */
    keyFrameIntervalS: number;
    /** Size of a key frame relative to a delta frame. */
    keyFrameScale: number;
    /** Largest RTP packet, header included. */
    maxPacketBytes: number;
    /** Whether the first frame is a key frame (default true). */
    firstKeyFrame?: boolean;
    /** Whether a PLI or FIR makes the next frame a key frame (default true). */
    answerKeyFrameRequests?: boolean;
  };
  audio?: {
    payloadType: number;
    ssrc: number;
    /** Opus payload bytes per 20 ms packet (160: 64 kbit/s). */
    payloadBytes: number;
  };
}

export interface StreamCounts {
  packets: number;
  bytes: number;
  frames: number;
}

export interface RtpSenderCounts {
  video: StreamCounts & { keyFrames: number };
  audio: StreamCounts;
  /** Packets the kernel refused (send errors). */
  sendErrors: number;
  /** RTCP from the SFU: packets, and the key-frame requests among them. */
  rtcpPackets: number;
  pli: number;
  fir: number;
  /** Timer ticks that found more than one frame due (the timer ran late). */
  lateTicks: number;
}

const RTP_HEADER = 12;
const VP8_DESCRIPTOR = 4; // X|S, I, PictureID (2 bytes)
const VIDEO_CLOCK = 90_000;
const OPUS_CLOCK = 48_000;
const OPUS_PTIME_MS = 20;

export function defaultVideo(
  over: Partial<RtpSenderOptions['video']> = {},
): RtpSenderOptions['video'] {
  return {
    payloadType: 101,
    ssrc: 0x1111_0001,
    bitrate: 1_500_000,
    fps: 30,
    keyFrameIntervalS: 2,
    keyFrameScale: 4,
    maxPacketBytes: 1200,
    ...over,
  };
}

/** The bytes of one delta frame such that the average (key frames included) is `bitrate`. */
export function deltaFrameBytes(v: RtpSenderOptions['video']): number {
  const perFrame = v.bitrate / 8 / v.fps;
  const gop = v.keyFrameIntervalS > 0 ? Math.max(1, Math.round(v.keyFrameIntervalS * v.fps)) : 0;
  if (gop === 0) return Math.max(16, Math.round(perFrame));
  return Math.max(16, Math.round((perFrame * gop) / (gop - 1 + v.keyFrameScale)));
}

/** Packets a frame of `bytes` payload is split into. */
export function packetsPerFrame(bytes: number, maxPacketBytes: number): number {
  return Math.ceil(bytes / (maxPacketBytes - RTP_HEADER - VP8_DESCRIPTOR));
}

function rtpHeader(
  buf: Buffer,
  pt: number,
  marker: boolean,
  seq: number,
  ts: number,
  ssrc: number,
): void {
  buf[0] = 0x80; // V=2, no padding, no extension, no CSRC
  buf[1] = (marker ? 0x80 : 0) | pt;
  buf.writeUInt16BE(seq & 0xffff, 2);
  buf.writeUInt32BE(ts >>> 0, 4);
  buf.writeUInt32BE(ssrc >>> 0, 8);
}

/** The VP8 frame header (RFC 6386 9.1) at the start of a frame's first partition. */
function vp8FrameHeader(buf: Buffer, at: number, key: boolean, frameBytes: number): void {
  const firstPartition = Math.min(Math.floor(frameBytes / 4), 0x7ffff);
  // key_frame bit (0 = key), version 0, show_frame 1, first_part_size (19 bits).
  const tag = (key ? 0 : 1) | (1 << 4) | (firstPartition << 5);
  buf[at] = tag & 0xff;
  buf[at + 1] = (tag >>> 8) & 0xff;
  buf[at + 2] = (tag >>> 16) & 0xff;
  if (!key) return;
  buf[at + 3] = 0x9d; // start code
  buf[at + 4] = 0x01;
  buf[at + 5] = 0x2a;
  buf.writeUInt16LE(1280, at + 6); // width, no scaling
  buf.writeUInt16LE(720, at + 8); // height, no scaling
}

export class RtpSender {
  readonly #opts: RtpSenderOptions;
  readonly #socket: dgram.Socket;
  readonly #counts: RtpSenderCounts = {
    video: { packets: 0, bytes: 0, frames: 0, keyFrames: 0 },
    audio: { packets: 0, bytes: 0, frames: 0 },
    sendErrors: 0,
    rtcpPackets: 0,
    pli: 0,
    fir: 0,
    lateTicks: 0,
  };
  readonly #filler: Buffer;
  readonly #deltaBytes: number;
  readonly #gop: number;
  #keyFrameAsked = false;
  #videoSeq = Math.floor(Math.random() * 0x10000);
  #audioSeq = Math.floor(Math.random() * 0x10000);
  readonly #videoTs0 = Math.floor(Math.random() * 0x1_0000_0000);
  readonly #audioTs0 = Math.floor(Math.random() * 0x1_0000_0000);
  #timers: NodeJS.Timeout[] = [];
  #running = false;
  #lastError: Error | undefined;

  private constructor(opts: RtpSenderOptions, socket: dgram.Socket) {
    this.#opts = opts;
    this.#socket = socket;
    this.#deltaBytes = deltaFrameBytes(opts.video);
    this.#gop =
      opts.video.keyFrameIntervalS > 0
        ? Math.max(1, Math.round(opts.video.keyFrameIntervalS * opts.video.fps))
        : 0;
    // Payload bytes: not all zeros, the same for every frame (nothing inspects them).
    this.#filler = Buffer.alloc(opts.video.maxPacketBytes);
    for (let i = 0; i < this.#filler.length; i++) this.#filler[i] = (i * 151 + 7) & 0xff;
    socket.on('message', (msg) => {
      this.#onRtcp(msg);
    });
    socket.on('error', (err) => {
      this.#lastError = err;
    });
  }

  /** A sender bound to an ephemeral port on the target's loopback/interface address. */
  static async open(opts: RtpSenderOptions): Promise<RtpSender> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(opts.target.port, opts.target.ip, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new RtpSender(opts, socket);
  }

  get deltaFrameBytes(): number {
    return this.#deltaBytes;
  }

  /** The local address (what a comedia transport learns as the remote). */
  get address(): UdpAddress {
    const a = this.#socket.address();
    return { ip: a.address, port: a.port };
  }

  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** A copy of the counters so far. */
  counts(): RtpSenderCounts {
    const c = this.#counts;
    return { ...c, video: { ...c.video }, audio: { ...c.audio } };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const { video, audio } = this.#opts;
    this.#pace(1000 / video.fps, (i) => {
      this.#sendFrame(i);
    });
    if (audio !== undefined)
      this.#pace(OPUS_PTIME_MS, (i) => {
        this.#sendAudio(i);
      });
  }

  stop(): void {
    this.#running = false;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
  }

  async close(): Promise<void> {
    this.stop();
    await new Promise<void>((resolve) => {
      this.#socket.close(() => {
        resolve();
      });
    });
  }

  /** Call `emit(i)` for i = 0, 1, 2, … at t0 + i × intervalMs, catching up when late. */
  #pace(intervalMs: number, emit: (i: number) => void): void {
    const t0 = performance.now();
    let next = 0;
    const slot = this.#timers.length;
    const tick = (): void => {
      if (!this.#running) return;
      const now = performance.now();
      const due = Math.floor((now - t0) / intervalMs);
      if (due > next) this.#counts.lateTicks++;
      for (; next <= due; next++) emit(next);
      const t = setTimeout(tick, Math.max(0, t0 + next * intervalMs - performance.now()));
      this.#timers[slot] = t;
    };
    this.#timers.push(setTimeout(tick, 0));
  }

  /** Counted when handed to the socket (so counts never lag), taken back if it fails. */
  #send(rtp: Buffer, stream: StreamCounts): void {
    const buf = this.#opts.protect === undefined ? rtp : this.#opts.protect(rtp);
    stream.packets++;
    stream.bytes += buf.length;
    this.#socket.send(buf, (err) => {
      if (err === null) return;
      stream.packets--;
      stream.bytes -= buf.length;
      this.#counts.sendErrors++;
      this.#lastError = err;
    });
  }

  #sendFrame(i: number): void {
    const v = this.#opts.video;
    const key =
      (i === 0 && v.firstKeyFrame !== false) ||
      this.#keyFrameAsked ||
      (i > 0 && this.#gop > 0 && i % this.#gop === 0);
    this.#keyFrameAsked = false;
    const frameBytes = key ? Math.round(this.#deltaBytes * v.keyFrameScale) : this.#deltaBytes;
    const n = packetsPerFrame(frameBytes, v.maxPacketBytes);
    const ts = (this.#videoTs0 + Math.round((i * VIDEO_CLOCK) / v.fps)) >>> 0;
    const pictureId = i & 0x7fff;
    let offset = 0;
    for (let p = 0; p < n; p++) {
      // Even sizes: the first (frameBytes mod n) packets carry one byte more.
      const chunk = Math.floor(frameBytes / n) + (p < frameBytes % n ? 1 : 0);
      const buf = Buffer.allocUnsafe(RTP_HEADER + VP8_DESCRIPTOR + chunk);
      rtpHeader(buf, v.payloadType, p === n - 1, this.#videoSeq++, ts, v.ssrc);
      buf[RTP_HEADER] = 0x80 | (p === 0 ? 0x10 : 0); // X, S on the first packet, PartID 0
      buf[RTP_HEADER + 1] = 0x80; // I: PictureID present
      buf.writeUInt16BE(0x8000 | pictureId, RTP_HEADER + 2); // M: 15-bit PictureID
      const body = RTP_HEADER + VP8_DESCRIPTOR;
      this.#filler.copy(buf, body, 0, chunk);
      if (p === 0) vp8FrameHeader(buf, body, key, frameBytes);
      offset += chunk;
      this.#send(buf, this.#counts.video);
    }
    this.#counts.video.frames++;
    if (key) this.#counts.video.keyFrames++;
    if (offset !== frameBytes) throw new Error(`packetization lost bytes: ${offset}/${frameBytes}`);
  }

  #sendAudio(i: number): void {
    const a = this.#opts.audio;
    if (a === undefined) return;
    const buf = Buffer.allocUnsafe(RTP_HEADER + a.payloadBytes);
    const ts = (this.#audioTs0 + i * ((OPUS_CLOCK * OPUS_PTIME_MS) / 1000)) >>> 0;
    rtpHeader(buf, a.payloadType, false, this.#audioSeq++, ts, a.ssrc);
    this.#filler.copy(buf, RTP_HEADER, 0, a.payloadBytes);
    buf[RTP_HEADER] = 0xf8; // TOC: config 31 (CELT FB 20 ms), mono, one frame
    this.#counts.audio.frames++;
    this.#send(buf, this.#counts.audio);
  }

  /**
   * Walk a (compound) RTCP packet: count PLI (PT 206 FMT 1) and FIR (PT 206 FMT 4). Under
   * SRTCP only the first packet's header is in the clear: only it is read.
   */
  #onRtcp(msg: Buffer): void {
    this.#counts.rtcpPackets++;
    const end = this.#opts.protect === undefined ? msg.length : Math.min(msg.length, 8);
    let at = 0;
    while (at + 4 <= end) {
      const b0 = msg[at] ?? 0;
      const pt = msg[at + 1] ?? 0;
      if (b0 >> 6 !== 2) return;
      const fmt = b0 & 0x1f;
      const answer = this.#opts.video.answerKeyFrameRequests !== false;
      if (pt === 206 && fmt === 1) {
        this.#counts.pli++;
        if (answer) this.#keyFrameAsked = true;
      } else if (pt === 206 && fmt === 4) {
        this.#counts.fir++;
        if (answer) this.#keyFrameAsked = true;
      }
      at += (msg.readUInt16BE(at + 2) + 1) * 4;
    }
  }
}
