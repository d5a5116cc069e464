/**
 * In-page code of the SFU end-to-end test and the first-frame benchmark: a web client of the
 * gateway's /api built on the SDK as an application would build it (`connect`, then
 * `RoomMedia` with the camera, the microphone and a data channel), recording what the test
 * reads: every event in order, each remote track with the media generation it came in and its
 * first decoded frame, the messages, the transports' states. The test drives it through
 * `globalThis.sfu` (SfuApi); errors the SDK reports come back in `state().errors`.
 */
import {
  connect,
  RoomMedia,
  type LocalTrack,
  type RemoteTrack,
  type RoomEventName,
  type Session,
} from '@switchboard/client';
import { MediaEvents, ServerEvents, type JoinReply, type Peer } from '@switchboard/protocol';

/** One event as the page received it. */
export interface PageEvent {
  a: string;
  d?: Record<string, unknown>;
  at: number;
}

/** A remote track as the test sees it. */
export interface ConsumerInfo {
  consumerId: string;
  peer: Peer;
  kind: 'audio' | 'video';
  source: string;
  /** The media generation it came in (1 after start, one more per restart). */
  generation: number;
  /** Date.now() when its first frame was decoded (video; polled every 50 ms). */
  firstFrameAt: number | null;
  closed: boolean;
  /** Who ended it: the server (eventConsumerClosed), or a media restart. */
  closedBy: 'server' | 'reset' | null;
}

export interface ConsumerStat extends ConsumerInfo {
  framesDecoded: number;
  packetsReceived: number;
  bytesReceived: number;
}

/** Everything the test reads: plain data, so page.evaluate returns it as it is. */
export interface PageState {
  label: string;
  socketId: string | null;
  /** Date.now() when the page began to connect. */
  connectAt: number;
  events: PageEvent[];
  errors: string[];
  /** Media restarts after eventMediaReset. */
  resets: number;
  generation: number;
  messages: { from: Peer; label: string; text: string; at: number }[];
  transports: Record<string, string>;
  /** How the session ended (null while it lasts). */
  closed: string | null;
  consumers: ConsumerInfo[];
  dataConsumers: { dataConsumerId: string; peer: Peer; label: string; open: boolean }[];
  producers: Partial<Record<Kind, string>>;
  sendTransportId: string | null;
  recvTransportId: string | null;
}

type Kind = 'audio' | 'video';

/** What the page exposes as globalThis.sfu. */
export interface SfuApi {
  start(args: { wsUrl: string; roomId: string; bearer: string; label: string }): Promise<JoinReply>;
  stats(): Promise<ConsumerStat[]>;
  state(): PageState;
  /** Send `text` on the data channel once it is open. */
  send(text: string): Promise<void>;
  leave(): Promise<void>;
  /** Any request of the session (the caller fills in the ids it read from state()). */
  request(a: string, d: unknown): Promise<unknown>;
  /** Mute (pause) or unmute the local track of `kind`, here and on the server. */
  pause(kind: Kind, paused: boolean): Promise<void>;
  /** Stop publishing `kind`. */
  closeProducer(kind: Kind): Promise<void>;
  /** Enable or disable the local track (the server is not told: silence, black frames). */
  setTrackEnabled(kind: Kind, enabled: boolean): void;
  /**
   * Stop (`false`) or restart sending `kind`'s RTP without telling the server, as a client
   * whose camera silently dies would: the sender's track is taken away.
   */
  sending(kind: Kind, on: boolean): Promise<void>;
}

/** The events a session emits, by name (eventBatch arrives unpacked). */
const EVENT_NAMES = [
  ...Object.keys(ServerEvents).filter((a) => a !== 'eventBatch'),
  ...Object.keys(MediaEvents),
] as RoomEventName[];

/**
 * The camera in two simulcast layers, as most mediasoup clients send it: each consumer starts
 * with a layer switch (eventConsumerLayersChanged, eventConsumerScore), and a producer that
 * stops sending scores 0 (mediasoup checks RTP inactivity only with several layers).
 */
const SIMULCAST = [{ scaleResolutionDownBy: 2 }, { scaleResolutionDownBy: 1 }];

interface Received {
  track: RemoteTrack;
  info: ConsumerInfo;
}

const state: PageState = {
  label: '',
  socketId: null,
  connectAt: 0,
  events: [],
  errors: [],
  resets: 0,
  generation: 0,
  messages: [],
  transports: {},
  closed: null,
  consumers: [],
  dataConsumers: [],
  producers: {},
  sendTransportId: null,
  recvTransportId: null,
};
const received = new Map<string, Received>();
const locals = new Map<Kind, LocalTrack>();
let session: Session | undefined;
let media: RoomMedia | undefined;
/** A media restart is under way: the tracks it removes end by the reset, not the server. */
let resetting = 0;

const fail = (where: string, err: unknown): void => {
  state.errors.push(`${where}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
};

const joined = (): { session: Session; media: RoomMedia } => {
  if (session === undefined || media === undefined) throw new Error('not started');
  return { session, media };
};

const local = (kind: Kind): LocalTrack => {
  const l = locals.get(kind);
  if (l === undefined) throw new Error(`no ${kind} published`);
  return l;
};

// ---------------------------------------------------------------------------- the video grid

const grid = (): HTMLElement => {
  let g = document.getElementById('grid');
  if (g === null) {
    g = document.createElement('div');
    g.id = 'grid';
    g.style.cssText = 'display:flex;flex-wrap:wrap;gap:8px';
    document.body.append(g);
  }
  return g;
};

/** The track's <video>, in a figure `v-<consumerId>` (the first-frame benchmark finds it so). */
const showVideo = (r: RemoteTrack, generation: number): void => {
  const fig = document.createElement('figure');
  fig.id = `v-${r.consumerId}`;
  fig.style.cssText = 'margin:0;font:14px sans-serif';
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.width = 320;
  video.height = 240;
  video.style.background = '#000';
  video.srcObject = new MediaStream([r.track]);
  const caption = document.createElement('figcaption');
  caption.textContent = `${r.peer.userId} (${r.peer.socketId.slice(0, 8)}) gen ${String(generation)}`;
  fig.append(video, caption);
  grid().append(fig);
  video.play().catch(() => {
    // autoplay of a muted video is allowed; a play() interrupted by removal is not an error
  });
};

// ------------------------------------------------------------------------------ receiving

const inbound = async (r: RemoteTrack): Promise<Record<string, number> | null> => {
  let found: Record<string, number> | null = null;
  (await r.getStats()).forEach((s: Record<string, number> & { type: string }) => {
    if (s.type === 'inbound-rtp') found = s;
  });
  return found;
};

/** Record when the first frame of a video track is decoded. */
const watchFirstFrame = (r: Received): void => {
  const timer = setInterval(() => {
    if (r.info.closed) {
      clearInterval(timer);
      return;
    }
    inbound(r.track)
      .then((s) => {
        if ((s?.['framesDecoded'] ?? 0) > 0 && r.info.firstFrameAt === null) {
          r.info.firstFrameAt = Date.now();
          clearInterval(timer);
        }
      })
      .catch(() => {
        // the track ended in between
      });
  }, 50);
};

const trackAdded = (track: RemoteTrack, generation: number): void => {
  const r: Received = {
    track,
    info: {
      consumerId: track.consumerId,
      peer: track.peer,
      kind: track.kind,
      source: track.source,
      generation,
      firstFrameAt: null,
      closed: false,
      closedBy: null,
    },
  };
  received.set(track.consumerId, r);
  if (track.kind === 'video') {
    showVideo(track, generation);
    watchFirstFrame(r);
  }
};

const trackRemoved = (track: RemoteTrack): void => {
  const r = received.get(track.consumerId);
  if (r === undefined) return;
  r.info.closed = true;
  r.info.closedBy = resetting > 0 ? 'reset' : 'server';
  document.getElementById(`v-${track.consumerId}`)?.remove();
};

/** Record every event the session emits, and what the media does with them. */
const listen = (s: Session, m: RoomMedia): void => {
  for (const a of EVENT_NAMES) {
    s.on(a, (d) => {
      state.events.push({ a, d, at: Date.now() });
      if (a === 'eventMediaReset') resetting++;
    });
  }
  s.on('error', ({ error, context }) => {
    fail(context, error);
  });
  s.on('closed', ({ reason }) => {
    state.closed = reason;
  });
  m.on('trackAdded', (t) => {
    trackAdded(t, m.generation);
  });
  m.on('trackRemoved', trackRemoved);
  m.on('restarted', ({ reason }) => {
    if (reason !== 'reset') return;
    resetting = Math.max(0, resetting - 1);
    state.resets++;
  });
  m.on('transportState', ({ direction, state: s2 }) => {
    state.transports[direction] = s2;
  });
  m.on('data', ({ peer, label, data }) => {
    state.messages.push({
      from: peer,
      label,
      text: typeof data === 'string' ? data : `<${String(data.byteLength)} bytes>`,
      at: Date.now(),
    });
  });
};

// -------------------------------------------------------------------------------- the API

const sfu: SfuApi = {
  async start({ wsUrl, roomId, bearer, label }) {
    state.label = label;
    document.title = `sfu ${label}`;
    const h = document.createElement('h3');
    h.textContent = `${label}: receiving`;
    h.style.font = 'bold 16px sans-serif';
    document.body.append(h);
    // The microphone as it is captured (the test's WAV): no gain control or noise suppression
    // reshaping the levels the active-speaker observer reads.
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480 },
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    state.connectAt = Date.now();
    const s = await connect(wsUrl, {
      token: bearer,
      room: roomId,
      device: {
        deviceName: 'Chromium',
        version: navigator.userAgent.slice(0, 200),
        appVersion: 'sfu-test',
      },
    });
    const m = new RoomMedia(s, { simulcastEncodings: SIMULCAST, dataChannel: 'chat' });
    session = s;
    media = m;
    state.socketId = s.socketId;
    listen(s, m);
    await m.start();
    const [video] = stream.getVideoTracks();
    const [audio] = stream.getAudioTracks();
    if (video === undefined || audio === undefined) throw new Error('no camera or microphone');
    locals.set('video', await m.publishCamera({ track: video }));
    locals.set('audio', await m.publishMicrophone({ track: audio }));
    return s.joinReply;
  },

  async stats() {
    const out: ConsumerStat[] = [];
    for (const r of received.values()) {
      const s = r.info.closed ? null : await inbound(r.track).catch(() => null);
      out.push({
        ...r.info,
        framesDecoded: s?.['framesDecoded'] ?? 0,
        packetsReceived: s?.['packetsReceived'] ?? 0,
        bytesReceived: s?.['bytesReceived'] ?? 0,
      });
    }
    return out;
  },

  state() {
    const ids = media?.transportIds;
    return {
      ...state,
      generation: media?.generation ?? 0,
      consumers: [...received.values()].map((r) => ({ ...r.info })),
      dataConsumers: (media?.incomingData ?? []).map((d) => ({ ...d })),
      producers: Object.fromEntries(
        [...locals].flatMap(([k, l]) => (l.producerId === undefined ? [] : [[k, l.producerId]])),
      ),
      sendTransportId: ids?.send ?? null,
      recvTransportId: ids?.recv ?? null,
    };
  },

  async send(text) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        joined().media.sendData(text);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  },

  async request(a, d) {
    // The test sends whatever it likes: the gateway is what checks it.
    return await (joined().session.request as (a: string, d: unknown) => Promise<unknown>)(a, d);
  },

  async pause(kind, paused) {
    await (paused ? local(kind).mute() : local(kind).unmute());
  },

  async closeProducer(kind) {
    const l = local(kind);
    locals.delete(kind);
    await l.close();
  },

  setTrackEnabled(kind, enabled) {
    local(kind).track.enabled = enabled;
  },

  async sending(kind, on) {
    const l = local(kind);
    const sender = l.sender;
    if (sender === undefined) throw new Error(`${kind} is not being sent`);
    await sender.replaceTrack(on ? l.track : null);
  },

  async leave() {
    if (session === undefined) return;
    await session.leave();
    await media?.close();
  },
};

(globalThis as unknown as { sfu: SfuApi }).sfu = sfu;
