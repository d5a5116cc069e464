/**
 * In-page instrumentation of `bench/first-frame.ts`, added to a page with addInitScript so
 * that it runs before the page's own scripts: the pages (test/e2e/pages/sfu.ts and p2p.ts)
 * are used as they are. It wraps two globals the pages look up when they call them:
 *
 * - WebSocket: the time the socket opened, and every frame sent and received (action, id and
 *   the few fields that tell the milestones apart: never the bearer);
 * - RTCPeerConnection: each connection's creation and its first `connected` state, and (when
 *   polling is on) getStats every `pollMs` for each inbound video stream's first packet and
 *   first decoded frame (inbound-rtp packetsReceived, framesDecoded > 0), by SSRC.
 *
 * Each remote video track (the connection's `track` event, when the remote description is set,
 * before any media flows) is also played by a small <video> of the script's own (a probe), with
 * a requestVideoFrameCallback: the first frame presented and the time its last packet arrived
 * (receiveTime) — exact, where the polled figures are late by up to one polling interval, and
 * independent of when the page itself shows the track. The <video> elements the page adds get
 * a requestVideoFrameCallback too (what the page shows, when it shows it).
 *
 * All times are performance.now() of the page, in ms. `window.__ffWait(…)` resolves once the
 * first frame of the awaited stream is decoded and presented (or `presentedGraceMs` after it was
 * decoded), with a snapshot; `window.__ffClose()` closes the page's sockets normally (1000).
 *
 * The script is plain browser JavaScript in a string: the project's TypeScript has no DOM
 * types, and the page evaluates it as it is.
 */

export interface InstrumentOptions {
  /** Poll getStats of every peer connection every this many ms (0: do not poll). */
  pollMs: number;
}

/** A WebSocket frame as recorded (only the fields the milestones need). */
export interface FfFrame {
  t: number;
  dir: 'in' | 'out';
  a: string;
  id?: number;
  s?: boolean;
  /** createWebRtcTransport */
  direction?: string;
  /** exchangeSdp, eventExchangeSdp */
  sdpType?: string;
  /** resumeConsumer; eventNewConsumer (its id) */
  consumerId?: string;
  /** eventNewConsumer */
  kind?: string;
  /** eventNewConsumer: the producer's owner; eventExchangeSdp: the sender */
  from?: string;
  /** eventNewConsumer: the consumer's SSRC (its first encoding) */
  ssrc?: number;
  /** joinR */
  socketId?: string;
  sessions?: string[];
}

export interface FfVideo {
  /** Index of the peer connection in `pcs`. */
  pc: number;
  firstSeen: number;
  firstPacket: number | null;
  firstDecoded: number | null;
  /** inbound-rtp trackIdentifier: the id of the receiver's track (FfProbe.trackId). */
  trackId?: string;
  width?: number;
  height?: number;
  decoder?: string;
}

export interface FfPresented {
  /** When the callback ran. */
  t: number;
  /** VideoFrameCallbackMetadata: when the frame went to the compositor, when its last packet came. */
  presentationTime: number;
  expectedDisplayTime: number;
  receiveTime: number | null;
  width: number;
  height: number;
  /** The id of the <video>'s parent element (sfu.ts: `v-<consumerId>`), else of the <video>. */
  owner: string;
}

/** The first frame of a remote video track on the script's own <video>. */
export interface FfProbe {
  /** Index of the peer connection in `pcs`. */
  pc: number;
  /** When the track arrived (the `track` event). */
  trackAt: number;
  presentationTime: number | null;
  receiveTime: number | null;
  width?: number;
  height?: number;
  /** The track's id: inbound-rtp's trackIdentifier (FfVideo.trackId). */
  trackId: string;
}

export interface FfPc {
  created: number;
  connected: number | null;
  states: [number, string][];
}

export interface FfState {
  /** performance.timeOrigin of the page (epoch ms), to compare with Date.now() figures. */
  timeOrigin: number;
  wsOpen: number | null;
  frames: FfFrame[];
  pcs: FfPc[];
  /** Inbound video streams by SSRC. */
  video: Record<string, FfVideo>;
  presented: FfPresented[];
  probes: FfProbe[];
  errors: string[];
  polls: number;
  /** Mean time a round of getStats calls took, ms. */
  pollMeanMs: number;
}

export interface FfWaitOptions {
  /** The socketId whose camera is awaited (SFU: its consumer's SSRC); null: any inbound video. */
  from: string | null;
  timeoutMs: number;
  presentedGraceMs: number;
}

export type FfWaitResult =
  { ok: true; state: FfState } | { ok: false; reason: string; state: FfState };

/** The globals the script defines, for page.evaluate callbacks. */
export interface FfGlobal {
  __ff: FfState;
  __ffWait(o: FfWaitOptions): Promise<FfWaitResult>;
  __ffClose(): Promise<void>;
}

export function instrumentScript(opts: InstrumentOptions): string {
  return `(() => {
  'use strict';
  if (window.__ff !== undefined) return;
  const POLL_MS = ${String(Math.max(0, Math.floor(opts.pollMs)))};
  const now = () => performance.now();
  const ff = {
    timeOrigin: performance.timeOrigin,
    wsOpen: null,
    frames: [],
    pcs: [],
    video: {},
    presented: [],
    probes: [],
    errors: [],
    polls: 0,
    pollMeanMs: 0,
  };
  const pcObjects = [];
  const sockets = [];
  window.__ff = ff;
  const fail = (where, err) => {
    ff.errors.push(where + ': ' + (err && err.message ? err.message : String(err)));
  };

  // ------------------------------------------------------------------------- WebSocket
  const note = (dir, f, t) => {
    if (f === null || typeof f !== 'object') return;
    const d = f.d !== null && typeof f.d === 'object' ? f.d : {};
    const e = { t, dir, a: String(f.a) };
    if (typeof f.id === 'number') e.id = f.id;
    if (typeof f.s === 'boolean') e.s = f.s;
    switch (f.a) {
      case 'createWebRtcTransport':
        e.direction = d.direction;
        break;
      case 'resumeConsumer':
        e.consumerId = d.consumerId;
        break;
      case 'exchangeSdp':
        e.sdpType = d.sdp && d.sdp.type;
        break;
      case 'eventExchangeSdp':
        e.sdpType = d.sdp && d.sdp.type;
        e.from = d.from && d.from.socketId;
        break;
      case 'eventNewConsumer': {
        e.consumerId = d.id;
        e.kind = d.kind;
        e.from = d.peer && d.peer.socketId;
        const enc = d.rtpParameters && d.rtpParameters.encodings && d.rtpParameters.encodings[0];
        if (enc && typeof enc.ssrc === 'number') e.ssrc = enc.ssrc;
        break;
      }
      case 'joinR':
        if (f.s === true) {
          e.socketId = d.socketId;
          e.sessions = Array.isArray(d.sessions) ? d.sessions.map((s) => s.socketId) : [];
        }
        break;
      default:
        break;
    }
    ff.frames.push(e);
  };

  const NativeWebSocket = window.WebSocket;
  class InstrumentedWebSocket extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
      this.addEventListener('open', () => {
        if (ff.wsOpen === null) ff.wsOpen = now();
      });
      // Registered before the page's onmessage: the time is that of the frame's arrival.
      this.addEventListener('message', (m) => {
        const t = now();
        try {
          note('in', JSON.parse(m.data), t);
        } catch (err) {
          fail('ws in', err);
        }
      });
    }
    send(data) {
      const t = now();
      try {
        if (typeof data === 'string') note('out', JSON.parse(data), t);
      } catch (err) {
        fail('ws out', err);
      }
      super.send(data);
    }
  }
  window.WebSocket = InstrumentedWebSocket;

  window.__ffClose = async () => {
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise((resolve) => {
            if (ws.readyState === NativeWebSocket.CLOSED) {
              resolve();
              return;
            }
            ws.addEventListener('close', () => resolve(), { once: true });
            ws.close(1000, 'bench');
          }),
      ),
    );
  };

  // ----------------------------------------------------------------- RTCPeerConnection
  let timer = null;
  const poll = async () => {
    const started = now();
    for (let i = 0; i < pcObjects.length; i++) {
      const pc = pcObjects[i];
      if (pc.signalingState === 'closed') continue;
      // The report is the state at about the time it was asked for.
      const t = now();
      let report;
      try {
        report = await pc.getStats();
      } catch {
        continue;
      }
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        const key = String(s.ssrc);
        let v = ff.video[key];
        if (v === undefined) {
          v = { pc: i, firstSeen: t, firstPacket: null, firstDecoded: null };
          ff.video[key] = v;
        }
        if (v.trackId === undefined && s.trackIdentifier) v.trackId = s.trackIdentifier;
        if (v.firstPacket === null && (s.packetsReceived || 0) > 0) v.firstPacket = t;
        if (v.firstDecoded === null && (s.framesDecoded || 0) > 0) v.firstDecoded = t;
        // The size and decoder may show a report or two after the first decoded frame.
        if (v.firstDecoded !== null && v.width === undefined && s.frameWidth !== undefined) {
          v.width = s.frameWidth;
          v.height = s.frameHeight;
        }
        if (v.firstDecoded !== null && v.decoder === undefined && s.decoderImplementation) {
          v.decoder = s.decoderImplementation;
        }
      });
    }
    ff.pollMeanMs = (ff.pollMeanMs * ff.polls + (now() - started)) / (ff.polls + 1);
    ff.polls++;
  };
  const schedule = () => {
    if (POLL_MS <= 0 || timer !== null) return;
    const tick = () => {
      const t0 = now();
      poll()
        .catch((err) => fail('poll', err))
        .finally(() => {
          timer = setTimeout(tick, Math.max(0, POLL_MS - (now() - t0)));
        });
    };
    timer = setTimeout(tick, 0);
  };

  const NativePeerConnection = window.RTCPeerConnection;
  class InstrumentedPeerConnection extends NativePeerConnection {
    constructor(...args) {
      super(...args);
      const rec = { created: now(), connected: null, states: [] };
      ff.pcs.push(rec);
      pcObjects.push(this);
      this.addEventListener('connectionstatechange', () => {
        const s = this.connectionState;
        rec.states.push([now(), s]);
        if (s === 'connected' && rec.connected === null) rec.connected = now();
      });
      const index = ff.pcs.length - 1;
      this.addEventListener('track', (e) => {
        if (e.track.kind === 'video') probe(index, e.track);
      });
      schedule();
    }
  }
  window.RTCPeerConnection = InstrumentedPeerConnection;

  // ------------------------------------------------------------------------- <video>
  const probe = (pc, track) => {
    const rec = { pc, trackAt: now(), presentationTime: null, receiveTime: null, trackId: track.id };
    ff.probes.push(rec);
    const v = document.createElement('video');
    v.__ffWatched = true;
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.width = 64;
    v.height = 48;
    v.style.cssText = 'position:fixed;right:0;bottom:' + String(48 * (ff.probes.length - 1)) + 'px';
    v.srcObject = new MediaStream([track]);
    (document.body || document.documentElement).append(v);
    v.play().catch(() => {
      // a probe that cannot play shows no frame: the run reports none
    });
    if (typeof v.requestVideoFrameCallback !== 'function') {
      fail('probe', new Error('no requestVideoFrameCallback'));
      return;
    }
    v.requestVideoFrameCallback((_t, meta) => {
      rec.presentationTime = meta.presentationTime;
      rec.receiveTime = typeof meta.receiveTime === 'number' ? meta.receiveTime : null;
      rec.width = meta.width;
      rec.height = meta.height;
    });
  };

  const watchVideo = (v) => {
    if (v.__ffWatched === true) return;
    v.__ffWatched = true;
    if (typeof v.requestVideoFrameCallback !== 'function') {
      fail('video', new Error('no requestVideoFrameCallback'));
      return;
    }
    v.requestVideoFrameCallback((_t, meta) => {
      ff.presented.push({
        t: now(),
        presentationTime: meta.presentationTime,
        expectedDisplayTime: meta.expectedDisplayTime,
        receiveTime: typeof meta.receiveTime === 'number' ? meta.receiveTime : null,
        width: meta.width,
        height: meta.height,
        owner: (v.parentElement && v.parentElement.id) || v.id || '',
      });
    });
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeName === 'VIDEO') watchVideo(n);
        else if (typeof n.querySelectorAll === 'function') n.querySelectorAll('video').forEach(watchVideo);
      }
    }
  }).observe(document, { childList: true, subtree: true });

  // --------------------------------------------------------------------------- waiting
  /** The awaited stream: { ssrc, consumerId } (SFU: the consumer of from's camera). */
  const target = (from) => {
    if (from === null) {
      const decoded = Object.entries(ff.video).filter(([, v]) => v.firstDecoded !== null);
      decoded.sort((a, b) => a[1].firstDecoded - b[1].firstDecoded);
      const first = decoded[0] || Object.entries(ff.video)[0];
      return first === undefined ? null : { ssrc: first[0], consumerId: null };
    }
    const ev = ff.frames.find(
      (f) => f.dir === 'in' && f.a === 'eventNewConsumer' && f.kind === 'video' && f.from === from,
    );
    return ev === undefined || ev.ssrc === undefined
      ? null
      : { ssrc: String(ev.ssrc), consumerId: ev.consumerId };
  };
  const presentedOf = (tg) =>
    ff.presented.find((p) => tg.consumerId === null || p.owner.includes(tg.consumerId)) ||
    (ff.presented.length === 1 ? ff.presented[0] : undefined);
  const probeOf = (tg) => {
    const v = ff.video[tg.ssrc];
    return v === undefined || v.trackId === undefined
      ? undefined
      : ff.probes.find((p) => p.presentationTime !== null && p.trackId === v.trackId);
  };

  window.__ffWait = ({ from, timeoutMs, presentedGraceMs }) =>
    new Promise((resolve) => {
      const deadline = now() + timeoutMs;
      const check = () => {
        const tg = target(from);
        const v = tg === null ? undefined : ff.video[tg.ssrc];
        if (v !== undefined && v.firstDecoded !== null) {
          const complete =
            probeOf(tg) !== undefined && presentedOf(tg) !== undefined && v.width !== undefined;
          if (complete || now() - v.firstDecoded > presentedGraceMs) {
            resolve({ ok: true, state: ff });
            return;
          }
        }
        if (now() > deadline) {
          const reason =
            tg === null
              ? from === null
                ? 'no inbound video stream'
                : 'no video consumer of the publisher announced'
              : v === undefined
                ? 'the stream never showed in getStats'
                : v.firstPacket === null
                  ? 'no video packet received'
                  : 'no frame decoded';
          resolve({ ok: false, reason, state: ff });
          return;
        }
        setTimeout(check, 20);
      };
      check();
    });
})();
`;
}
