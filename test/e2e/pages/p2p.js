// In-page code of the P2P signaling test: a plain WebRTC client of the gateway's /api
// protocol (join, exchangeSdp, exchangeCandidate), with fake camera and microphone. The
// test drives it through window.startP2P and reads window.p2pState.
'use strict';

window.startP2P = async ({ wsUrl, bearer, roomId }) => {
  const state = { errors: [], connection: 'new', socketId: null, events: [] };
  window.p2pState = state;
  const fail = (err) => {
    state.errors.push(String(err && err.stack ? err.stack : err));
  };

  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('WebSocket error'));
  });
  ws.onclose = (e) => state.events.push(`close ${e.code}`);

  let nextId = 1;
  const pending = new Map();
  const request = (a, d) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject, a });
      ws.send(JSON.stringify({ a, d, id }));
    });

  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  let pc = null;
  let peer = null;
  const makePc = (to) => {
    peer = to;
    pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    pc.onicecandidate = (e) => {
      if (e.candidate)
        request('exchangeCandidate', { to, candidate: e.candidate.toJSON() }).catch(fail);
    };
    pc.onconnectionstatechange = () => {
      state.connection = pc.connectionState;
    };
    pc.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      const video = document.createElement('video');
      video.id = 'remote';
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      video.srcObject = e.streams[0];
      document.body.append(video);
      video.play().catch(fail);
    };
  };

  // Events are handled one after another: a candidate must not overtake its SDP.
  let queue = Promise.resolve();
  const handle = async (f) => {
    state.events.push(f.a);
    if (f.a === 'eventExchangeSdp') {
      if (pc === null) makePc(f.d.from.socketId);
      await pc.setRemoteDescription(f.d.sdp);
      if (f.d.sdp.type === 'offer') {
        await pc.setLocalDescription();
        await request('exchangeSdp', { to: peer, sdp: pc.localDescription.toJSON() });
      }
    } else if (f.a === 'eventExchangeCandidate') {
      await pc.addIceCandidate(f.d.candidate);
    }
  };
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.id !== undefined && pending.has(f.id)) {
      const p = pending.get(f.id);
      pending.delete(f.id);
      if (f.s) p.resolve(f.d);
      else p.reject(new Error(`${p.a} failed: 0x${f.e.toString(16)}`));
      return;
    }
    queue = queue.then(() => handle(f)).catch(fail);
  };

  const joined = await request('join', {
    roomId,
    bearer,
    platform: 'Web',
    deviceName: 'Chromium',
    networkType: 'wifi',
    version: navigator.userAgent.slice(0, 200),
    appVersion: 'p2p-test',
    orientation: 90,
    camera: 'front',
  });
  state.socketId = joined.socketId;
  // The newcomer calls everyone already there.
  for (const s of joined.sessions) {
    makePc(s.socketId);
    await pc.setLocalDescription();
    await request('exchangeSdp', { to: s.socketId, sdp: pc.localDescription.toJSON() });
  }
  return joined;
};

/** Frames the remote video has shown so far (0 when there is none yet). */
window.remoteFrames = () => {
  const v = document.getElementById('remote');
  return v === null ? 0 : v.getVideoPlaybackQuality().totalVideoFrames;
};
