/**
 * In-page code of the P2P signaling test and the first-frame benchmark's baseline: WebRTC peer
 * to peer, signaled through the room with the SDK's Session (`connect`, then the exchangeSdp /
 * exchangeCandidate relay), with the fake camera and microphone. The newcomer calls everyone
 * already in the room. The test drives it through `globalThis.startP2P` and reads
 * `globalThis.p2pState` and `globalThis.remoteFrames()`.
 */
import { connect, type RoomEvents, type Session } from '@switchboard/client';
import type { JoinReply } from '@switchboard/protocol';

export interface P2PState {
  errors: string[];
  /** The peer connection's state. */
  connection: string;
  socketId: string | null;
  /** The names of the relayed events received, in order. */
  events: string[];
}

export interface P2PGlobal {
  startP2P(a: { wsUrl: string; bearer: string; roomId: string }): Promise<JoinReply>;
  p2pState: P2PState | undefined;
  /** Frames the remote video has shown so far (0 when there is none yet). */
  remoteFrames(): number;
}

const g = globalThis as unknown as P2PGlobal;

g.startP2P = async ({ wsUrl, bearer, roomId }) => {
  const state: P2PState = { errors: [], connection: 'new', socketId: null, events: [] };
  g.p2pState = state;
  const fail = (err: unknown): void => {
    state.errors.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
  };
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  const session: Session = await connect(wsUrl, {
    token: bearer,
    room: roomId,
    device: {
      deviceName: 'Chromium',
      version: navigator.userAgent.slice(0, 200),
      appVersion: 'p2p-test',
    },
  });
  session.on('error', ({ error }) => {
    fail(error);
  });
  state.socketId = session.socketId;

  let pc: RTCPeerConnection | undefined;
  const peerConnection = (to: string): RTCPeerConnection => {
    const p = new RTCPeerConnection();
    pc = p;
    for (const track of stream.getTracks()) p.addTrack(track, stream);
    p.onicecandidate = (e) => {
      if (e.candidate === null) return;
      const { candidate, sdpMid, sdpMLineIndex, usernameFragment } = e.candidate;
      session
        .request('exchangeCandidate', {
          to,
          candidate: { candidate, sdpMid, sdpMLineIndex, usernameFragment },
        })
        .catch(fail);
    };
    p.onconnectionstatechange = () => {
      state.connection = p.connectionState;
    };
    p.ontrack = (e) => {
      const [remote] = e.streams;
      if (e.track.kind !== 'video' || remote === undefined) return;
      const video = document.createElement('video');
      video.id = 'remote';
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      video.srcObject = remote;
      document.body.append(video);
      video.play().catch(fail);
    };
    return p;
  };
  const sendDescription = async (p: RTCPeerConnection, to: string): Promise<void> => {
    await p.setLocalDescription();
    const local = p.localDescription;
    if (local === null) throw new Error('no local description');
    await session.request('exchangeSdp', { to, sdp: { type: local.type, sdp: local.sdp } });
  };

  // Events are handled one after another: a candidate must not overtake its SDP.
  let queue = Promise.resolve();
  const inOrder = (f: () => Promise<void>): void => {
    queue = queue.then(f).catch(fail);
  };
  session.on('eventExchangeSdp', (d: RoomEvents['eventExchangeSdp']) => {
    state.events.push('eventExchangeSdp');
    inOrder(async () => {
      const p = pc ?? peerConnection(d.from.socketId);
      await p.setRemoteDescription(d.sdp);
      if (d.sdp.type === 'offer') await sendDescription(p, d.from.socketId);
    });
  });
  session.on('eventExchangeCandidate', (d: RoomEvents['eventExchangeCandidate']) => {
    state.events.push('eventExchangeCandidate');
    inOrder(async () => {
      await pc?.addIceCandidate(d.candidate);
    });
  });

  const joined = session.joinReply;
  // The newcomer calls everyone already there.
  for (const s of joined.sessions) await sendDescription(peerConnection(s.socketId), s.socketId);
  return joined;
};

g.remoteFrames = () => {
  const v = document.getElementById('remote');
  return v instanceof HTMLVideoElement ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
};
