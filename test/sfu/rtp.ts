/**
 * A tiny VP8 RTP source for tests: one single-packet key frame every 1/fps seconds to a UDP
 * address, until stopped. Enough for mediasoup to see a live stream (and forward it).
 */
import dgram from 'node:dgram';

export interface RtpSource {
  readonly sent: number;
  stop(): void;
}

/** `protect`: what each packet becomes before it is sent (SRTP), else sent as it is. */
export function vp8Source(
  target: { ip: string; port: number },
  ssrc: number,
  fps = 30,
  protect: (rtp: Buffer) => Buffer = (rtp) => rtp,
): RtpSource {
  const socket = dgram.createSocket('udp4');
  let seq = 1;
  let sent = 0;
  let stopped = false;
  const t0 = Date.now();
  const timer = setInterval(() => {
    const header = Buffer.alloc(12);
    header[0] = 0x80; // V=2
    header[1] = 0x80 | 101; // marker, PT 101
    header.writeUInt16BE(seq++ & 0xffff, 2);
    header.writeUInt32BE(((Date.now() - t0) * 90) >>> 0, 4);
    header.writeUInt32BE(ssrc, 8);
    // VP8 payload descriptor (S=1, PID 0), then a key frame header: P=0, start code, 320x240.
    const vp8 = Buffer.from([0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    const payload = protect(Buffer.concat([header, vp8, Buffer.alloc(400, 0x55)]));
    socket.send(payload, target.port, target.ip, (err) => {
      if (err === null) sent++;
    });
  }, 1000 / fps);
  return {
    get sent() {
      return sent;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      socket.close();
    },
  };
}

/** mediasoup's bandwidth probes: padding-only RTP of this SSRC. */
const PROBATION_SSRC = 1234;

/**
 * A UDP socket that counts what it receives (`packets`), and of it the media (`media`: RTP
 * that is neither RTCP nor a bandwidth probe), and keeps the last media packet.
 */
export async function udpSink(): Promise<{
  port: number;
  readonly packets: number;
  readonly media: number;
  readonly last: Buffer | undefined;
  close(): void;
}> {
  const socket = dgram.createSocket('udp4');
  let packets = 0;
  let media = 0;
  let last: Buffer | undefined;
  socket.on('message', (msg) => {
    packets++;
    // RFC 5761: payload types 64–95 (marker bit aside) are RTCP's on a muxed port.
    const pt = (msg[1] ?? 0) & 0x7f;
    if (msg.length < 12 || (pt >= 64 && pt <= 95) || msg.readUInt32BE(8) === PROBATION_SSRC) return;
    media++;
    last = msg;
  });
  await new Promise<void>((resolve) => {
    socket.bind(0, '127.0.0.1', resolve);
  });
  return {
    port: socket.address().port,
    get packets() {
      return packets;
    },
    get media() {
      return media;
    },
    get last() {
      return last;
    },
    close() {
      socket.close();
    },
  };
}

/** A VP8 producer's RTP parameters, as a browser would send them (for producers without media). */
export function vp8Parameters(ssrc: number) {
  return {
    mid: '0',
    codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, rtcpFeedback: [] }],
    headerExtensions: [],
    encodings: [{ ssrc }],
    rtcp: { cname: `c${String(ssrc)}`, reducedSize: true },
  };
}

/** An Opus producer's RTP parameters. */
export function opusParameters(ssrc: number) {
  return {
    mid: '1',
    codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
    encodings: [{ ssrc }],
    rtcp: { cname: `a${String(ssrc)}`, reducedSize: true },
  };
}
