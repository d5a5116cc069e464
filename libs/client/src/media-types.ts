/**
 * RoomMedia's types: its options and the events it emits.
 */
import type { Device, types as ms } from 'mediasoup-client';
import type { Peer, ProducerSource } from '@switchboard/protocol';
import type { LocalTrack } from './local-track.ts';
import type { Layers, RemoteTrack } from './remote-track.ts';
import type { RoomEvents } from './session-types.ts';

export interface RoomMediaOptions {
  /** Simulcast for the camera (default true). */
  simulcast?: boolean;
  /** The camera's simulcast encodings (default DEFAULT_SIMULCAST). */
  simulcastEncodings?: ms.RtpEncodingParameters[];
  /** Layers asked for on every new simulcast video consumer (default: the SFU's choice). */
  preferredLayers?: Layers;
  /** Label of the data channel opened on start (default "chat"; false: none). */
  dataChannel?: string | false;
  /** Answer the server's getClientStats and requestMute requests (default true). */
  serverRequests?: boolean;
  /** A mediasoup-client Device of your own (default: detected for this browser). */
  device?: () => Device;
}

export interface RoomMediaEvents {
  trackAdded: RemoteTrack;
  trackRemoved: RemoteTrack;
  /** The remote's owner paused (muted) it. */
  trackMuted: RemoteTrack;
  trackUnmuted: RemoteTrack;
  /** A new score or layers for a remote track. */
  trackUpdated: RemoteTrack;
  data: { peer: Peer; label: string; data: string | ArrayBuffer };
  activeSpeaker: RoomEvents['eventActiveSpeaker'];
  /** A member left the room. */
  peerLeft: { socketId: string; userId: string };
  /** The media was re-created (the SFU's reset, or the session's rejoin). */
  restarted: { reason: 'reset' | 'rejoin'; generation: number };
  transportState: { direction: 'send' | 'recv'; state: string };
  /** A local track ended by itself (the browser's "stop sharing"); it is unpublished. */
  localTrackEnded: LocalTrack;
  /** A moderator asked to mute `source`; `muted` tells what this client did. */
  muteRequested: { source: ProducerSource; reason?: string; muted: boolean };
  /**
   * The server API muted a local track (the others no longer receive it, and `unmute()` is
   * refused until it is unmuted) or unmuted it (`track.serverMuted` says which).
   */
  serverMuted: LocalTrack;
}
