// In-page code of the SFU end-to-end test: a mediasoup-client client of the gateway's /api
// protocol (join, then the media actions), with fake camera, microphone and a data channel.
// Bundled with mediasoup-client by test/e2e/sfu-page.ts; the test drives it through
// window.sfu (start, stats, state, send, leave, and helpers acting on the producers).
import { Device } from 'mediasoup-client';

/** Everything the test reads: plain data, so page.evaluate can return it as it is. */
const state = {
  label: '',
  socketId: null,
  userId: null,
  /** Date.now() when the WebSocket opened. */
  wsOpenAt: 0,
  /** Every event frame received (no replies), in order. */
  events: [],
  errors: [],
  /** eventMediaReset handled (renegotiations done). */
  resets: 0,
  /** Media set-ups completed (1 after start, one more per reset). */
  generation: 0,
  /** Messages received on data consumers. */
  messages: [],
  transports: {},
  closedCode: null,
};

let ws = null;
let nextId = 1;
const pending = new Map();
let device = null;
let sendTransport = null;
let recvTransport = null;
let dataProducer = null;
let stream = null;
/** id -> { consumer, peer, kind, source, generation, firstFrameAt, closed, closedBy } */
const consumers = new Map();
/** id -> { dataConsumer, peer, label, closed, closedBy } */
const dataConsumers = new Map();
const producers = new Map();
/** eventMediaReset frames received and not handled yet: what is queued before them is stale. */
let resetsPending = 0;

// mediasoup-client 3.24 no longer reports SCTP capabilities (device.sctpCapabilities is gone;
// the browser's SCTP association always offers 65535 streams): these are the numbers earlier
// versions reported, which ask the server for SCTP on the transport.
const SCTP_CAPABILITIES = { numStreams: { OS: 1024, MIS: 1024 } };

const fail = (where, err) => {
  state.errors.push(`${where}: ${err && err.stack ? err.stack : String(err)}`);
};

const request = (a, d) =>
  new Promise((resolve, reject) => {
    if (ws === null || ws.readyState !== WebSocket.OPEN) {
      reject(new Error(`${a}: the WebSocket is not open`));
      return;
    }
    const id = nextId++;
    pending.set(id, { resolve, reject, a });
    ws.send(JSON.stringify({ a, d, id }));
  });

// Events are handled one after another, in arrival order, with the media set-up itself in the
// same queue: a consumer event that overtakes the reply creating the receiving transport waits
// behind that set-up, and a reset never interleaves with a consume.
let queue = Promise.resolve();
const enqueue = (what, f) => {
  const p = queue.then(f);
  queue = p.catch((err) => {
    fail(what, err);
  });
  return p;
};

// ---------------------------------------------------------------------------- the video grid

const grid = () => {
  let g = document.getElementById('grid');
  if (g === null) {
    g = document.createElement('div');
    g.id = 'grid';
    g.style.cssText = 'display:flex;flex-wrap:wrap;gap:8px';
    document.body.append(g);
  }
  return g;
};

const showVideo = (id, track, peer) => {
  const fig = document.createElement('figure');
  fig.id = `v-${id}`;
  fig.style.cssText = 'margin:0;font:14px sans-serif';
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.width = 320;
  video.height = 240;
  video.style.background = '#000';
  video.srcObject = new MediaStream([track]);
  const caption = document.createElement('figcaption');
  caption.textContent = `${peer.userId} (${peer.socketId.slice(0, 8)}) gen ${state.generation}`;
  fig.append(video, caption);
  grid().append(fig);
  video.play().catch(() => {
    // autoplay of a muted video is allowed; a play() interrupted by removal is not an error
  });
};

const hideVideo = (id) => {
  document.getElementById(`v-${id}`)?.remove();
};

// ------------------------------------------------------------------------------- consuming

const inbound = async (consumer) => {
  let found = null;
  (await consumer.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp') found = s;
  });
  return found;
};

/** Record the time of the first decoded frame of a video consumer. */
const watchFirstFrame = (entry) => {
  const timer = setInterval(() => {
    if (entry.closed) {
      clearInterval(timer);
      return;
    }
    inbound(entry.consumer)
      .then((s) => {
        if (s !== null && (s.framesDecoded ?? 0) > 0 && entry.firstFrameAt === null) {
          entry.firstFrameAt = Date.now();
          clearInterval(timer);
        }
      })
      .catch(() => {
        // the consumer closed in between
      });
  }, 50);
};

const consume = async (d) => {
  const consumer = await recvTransport.consume({
    id: d.id,
    producerId: d.producerId,
    kind: d.kind,
    rtpParameters: d.rtpParameters,
  });
  const entry = {
    consumer,
    peer: d.peer,
    kind: d.kind,
    source: d.source,
    generation: state.generation,
    firstFrameAt: null,
    closed: false,
    closedBy: null,
  };
  consumers.set(consumer.id, entry);
  await request('resumeConsumer', { consumerId: consumer.id });
  if (d.kind === 'video') {
    showVideo(consumer.id, consumer.track, d.peer);
    watchFirstFrame(entry);
  }
};

const consumeData = async (d) => {
  const dataConsumer = await recvTransport.consumeData({
    id: d.id,
    dataProducerId: d.dataProducerId,
    sctpStreamParameters: d.sctpStreamParameters,
    label: d.label,
    protocol: d.protocol,
  });
  const entry = { dataConsumer, peer: d.peer, label: d.label, closed: false, closedBy: null };
  dataConsumers.set(dataConsumer.id, entry);
  dataConsumer.on('message', (data) => {
    state.messages.push({
      from: d.peer,
      label: d.label,
      text: typeof data === 'string' ? data : `<${String(data.byteLength)} bytes>`,
      at: Date.now(),
    });
  });
};

const closeConsumer = (id, by) => {
  const e = consumers.get(id);
  if (e === undefined || e.closed) return;
  e.closed = true;
  e.closedBy = by;
  e.consumer.close();
  hideVideo(id);
};

const closeDataConsumer = (id, by) => {
  const e = dataConsumers.get(id);
  if (e === undefined || e.closed) return;
  e.closed = true;
  e.closedBy = by;
  e.dataConsumer.close();
};

// ------------------------------------------------------------------------------- producing

const watchTransport = (t, name) => {
  state.transports[name] = t.connectionState;
  t.on('connectionstatechange', (s) => {
    // a transport of an earlier generation must not overwrite the current one's state
    if (t === sendTransport || t === recvTransport) state.transports[name] = s;
  });
};

const setupMedia = async () => {
  device = new Device();
  await device.load({ routerRtpCapabilities: await request('getRouterRtpCapabilities', {}) });
  const { iceServers } = state.join;
  const extra = iceServers === undefined ? {} : { iceServers };

  const sendInfo = await request('createWebRtcTransport', {
    direction: 'send',
    sctpCapabilities: SCTP_CAPABILITIES,
  });
  const send = device.createSendTransport({ ...sendInfo, ...extra });
  sendTransport = send;
  watchTransport(send, 'send');
  send.on('connect', ({ dtlsParameters }, cb, eb) => {
    request('connectWebRtcTransport', { transportId: send.id, dtlsParameters }).then(cb, eb);
  });
  send.on('produce', ({ kind, rtpParameters, appData }, cb, eb) => {
    request('produce', { transportId: send.id, kind, rtpParameters, source: appData.source })
      .then(({ id }) => {
        cb({ id });
      })
      .catch(eb);
  });
  send.on('producedata', ({ sctpStreamParameters, label, protocol }, cb, eb) => {
    request('produceData', { transportId: send.id, sctpStreamParameters, label, protocol })
      .then(({ id }) => {
        cb({ id });
      })
      .catch(eb);
  });

  const recvInfo = await request('createWebRtcTransport', {
    direction: 'recv',
    sctpCapabilities: SCTP_CAPABILITIES,
    rtpCapabilities: device.recvRtpCapabilities,
  });
  const recv = device.createRecvTransport({ ...recvInfo, ...extra });
  recvTransport = recv;
  watchTransport(recv, 'recv');
  recv.on('connect', ({ dtlsParameters }, cb, eb) => {
    request('connectWebRtcTransport', { transportId: recv.id, dtlsParameters }).then(cb, eb);
  });
  state.generation++;
};

/**
 * Publishing runs beside the event queue, not in it: a member that joins consumes the others
 * while its own camera and microphone go out. A reset waits for it before tearing down.
 */
const publishMedia = async () => {
  const send = sendTransport;
  if (send === null) return;

  // The same tracks every generation: a closed producer must not stop them. The camera goes
  // out in two simulcast layers, as most mediasoup clients send it: each consumer then starts
  // with a layer switch (eventConsumerLayersChanged and eventConsumerScore), and a producer
  // that stops sending scores 0 (mediasoup checks RTP inactivity only with several layers).
  const video = stream.getVideoTracks()[0];
  const audio = stream.getAudioTracks()[0];
  producers.clear();
  producers.set(
    'video',
    await send.produce({
      track: video,
      stopTracks: false,
      encodings: [{ scaleResolutionDownBy: 2 }, { scaleResolutionDownBy: 1 }],
      appData: { source: 'camera' },
    }),
  );
  producers.set(
    'audio',
    await send.produce({ track: audio, stopTracks: false, appData: { source: 'microphone' } }),
  );
  dataProducer = await send.produceData({ label: 'chat', protocol: 'text', ordered: true });
};

/** The publishing in progress (it never rejects: a failure is recorded). */
let publishing = Promise.resolve();
const publish = () => {
  publishing = publishMedia().catch((err) => {
    fail('publish', err);
  });
};

const teardownMedia = () => {
  for (const id of consumers.keys()) closeConsumer(id, 'reset');
  for (const id of dataConsumers.keys()) closeDataConsumer(id, 'reset');
  for (const p of producers.values()) p.close();
  producers.clear();
  dataProducer?.close();
  dataProducer = null;
  sendTransport?.close();
  recvTransport?.close();
  sendTransport = null;
  recvTransport = null;
  device = null;
};

// ---------------------------------------------------------------------------------- events

const handleEvent = async (f) => {
  const d = f.d ?? {};
  // Consumers of the media that a reset received after them has already destroyed.
  if (resetsPending > 0 && f.a !== 'eventMediaReset') return;
  switch (f.a) {
    case 'eventNewConsumer':
      await consume(d);
      break;
    case 'eventNewDataConsumer':
      await consumeData(d);
      break;
    case 'eventConsumerClosed':
      closeConsumer(d.consumerId, 'server');
      break;
    case 'eventDataConsumerClosed':
      closeDataConsumer(d.dataConsumerId, 'server');
      break;
    case 'eventProducerPaused':
      consumers.get(d.consumerId)?.consumer.pause();
      break;
    case 'eventProducerResumed':
      consumers.get(d.consumerId)?.consumer.resume();
      break;
    case 'eventMediaReset':
      resetsPending--;
      await publishing;
      teardownMedia();
      await setupMedia();
      publish();
      state.resets++;
      break;
    default:
      // eventConsumerScore, eventConsumerLayersChanged, eventActiveSpeaker, eventFreeze,
      // eventLeave...: recorded only
      break;
  }
};

const onFrame = (m) => {
  const f = JSON.parse(m.data);
  if (f.id !== undefined && pending.has(f.id)) {
    const p = pending.get(f.id);
    pending.delete(f.id);
    if (f.s) p.resolve(f.d);
    else p.reject(new Error(`${p.a} failed: 0x${Number(f.e).toString(16)}`));
    return;
  }
  state.events.push({ a: f.a, d: f.d, at: Date.now() });
  if (f.a === 'eventMediaReset') resetsPending++;
  void enqueue(f.a, () => handleEvent(f));
};

// ------------------------------------------------------------------------------ test API

const consumerInfo = (id, e) => ({
  consumerId: id,
  peer: e.peer,
  kind: e.kind,
  source: e.source,
  generation: e.generation,
  firstFrameAt: e.firstFrameAt,
  closed: e.closed,
  closedBy: e.closedBy,
});

window.sfu = {
  async start({ wsUrl, roomId, bearer, label }) {
    state.label = label;
    document.title = `sfu ${label}`;
    const h = document.createElement('h3');
    h.textContent = `${label}: receiving`;
    h.style.font = 'bold 16px sans-serif';
    document.body.append(h);
    // The microphone as it is captured (the test's WAV): no gain control or noise suppression
    // reshaping the levels the active-speaker observer reads.
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480 },
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    ws = new WebSocket(wsUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => {
        reject(new Error('WebSocket error'));
      };
    });
    state.wsOpenAt = Date.now();
    ws.onmessage = onFrame;
    ws.onclose = (e) => {
      state.closedCode = e.code;
      for (const p of pending.values()) p.reject(new Error(`${p.a}: WebSocket closed`));
      pending.clear();
    };
    const joined = await request('join', {
      roomId,
      bearer,
      platform: 'web',
      deviceName: 'Chromium',
      version: navigator.userAgent.slice(0, 200),
      appVersion: 'sfu-test',
    });
    state.join = joined;
    state.socketId = joined.socketId;
    await enqueue('setup', setupMedia);
    publish();
    await publishing;
    return joined;
  },

  /** Per consumer: who, what, and the browser's inbound-rtp counters. */
  async stats() {
    const out = [];
    for (const [id, e] of consumers) {
      const s = e.closed ? null : await inbound(e.consumer).catch(() => null);
      out.push({
        ...consumerInfo(id, e),
        framesDecoded: s?.framesDecoded ?? 0,
        packetsReceived: s?.packetsReceived ?? 0,
        bytesReceived: s?.bytesReceived ?? 0,
      });
    }
    return out;
  },

  state() {
    return {
      ...state,
      consumers: [...consumers].map(([id, e]) => consumerInfo(id, e)),
      dataConsumers: [...dataConsumers].map(([id, e]) => ({
        dataConsumerId: id,
        peer: e.peer,
        label: e.label,
        open: e.dataConsumer.readyState === 'open',
        closed: e.closed,
        closedBy: e.closedBy,
      })),
      producers: Object.fromEntries([...producers].map(([k, p]) => [k, p.id])),
      dataProducer: dataProducer && { id: dataProducer.id, readyState: dataProducer.readyState },
      sendTransportId: sendTransport?.id ?? null,
      recvTransportId: recvTransport?.id ?? null,
    };
  },

  /** Send `text` on the data producer once its channel is open. */
  async send(text) {
    const deadline = Date.now() + 10_000;
    while (dataProducer === null || dataProducer.readyState !== 'open') {
      if (Date.now() > deadline) throw new Error('the data producer did not open');
      await new Promise((r) => setTimeout(r, 50));
    }
    dataProducer.send(text);
  },

  /** Any request (the caller fills in the ids it read from state()). */
  async request(a, d) {
    return await request(a, d);
  },

  /** Pause the producer of `kind` here and on the server. */
  async pauseProducer(kind) {
    const p = producers.get(kind);
    p.pause();
    await request('pauseProducer', { producerId: p.id });
  },

  async resumeProducer(kind) {
    const p = producers.get(kind);
    p.resume();
    await request('resumeProducer', { producerId: p.id });
  },

  /** Close the producer of `kind` here and on the server. */
  async closeProducer(kind) {
    const p = producers.get(kind);
    producers.delete(kind);
    p.close();
    await request('closeProducer', { producerId: p.id });
  },

  /**
   * Enable or disable the local track of the producer of `kind` without telling the server:
   * a disabled microphone sends silence, a disabled camera black frames.
   */
  setTrackEnabled(kind, enabled) {
    const track = producers.get(kind).track;
    track.enabled = enabled;
  },

  /**
   * Stop sending the producer of `kind` without telling the server (the sender's track is
   * replaced with none: no RTP at all), as a client whose camera silently dies would.
   */
  async stopSending(kind) {
    await producers.get(kind).replaceTrack({ track: null });
  },

  /** Send the original track of `kind` again after stopSending. */
  async restoreSending(kind) {
    const track = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    await producers.get(kind).replaceTrack({ track });
  },

  /** Leave the room: close the WebSocket normally (the server ends the session). */
  async leave() {
    if (ws === null || ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => {
      ws.addEventListener('close', resolve, { once: true });
    });
    ws.close(1000, 'bye');
    await closed;
    teardownMedia();
  },
};
