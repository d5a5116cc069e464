/**
 * Media through the SFU for a Session, on mediasoup-client: publish camera, microphone and
 * screen; subscribe automatically to everything the others publish; a data channel; stats.
 *
 * - One send and one receive WebRTC transport, with the TURN/STUN servers of the join.
 * - Consuming is server-initiated: every eventNewConsumer becomes a RemoteTrack (`trackAdded`)
 *   and is resumed; events are handled one after another, in arrival order, with the media
 *   set-up itself in the same queue, so a consumer event that overtakes the reply creating the
 *   receive transport waits for it.
 * - The camera goes out in simulcast (three layers) unless `simulcast: false`.
 * - The media starts again by itself — transports recreated, every LocalTrack published anew
 *   with its mute state — after eventMediaReset (the SFU lost the room's worker or node) and
 *   after the session rejoined (its reconnect window had passed). A session that resumed
 *   keeps its transports; one whose ICE failed meanwhile restarts ICE.
 * - It answers the server's `getClientStats` and `requestMute` requests.
 *
 * Browsers only (mediasoup-client needs RTCPeerConnection).
 */
import { Device } from 'mediasoup-client';
import type { types as ms } from 'mediasoup-client';
import {
  ProtocolError,
  type ClientStats,
  type MediaKind,
  type Peer,
  type ProducerSource,
} from '@switchboard/protocol';
import { Emitter, type Listener } from './emitter.ts';
import type { Session } from './session.ts';
import type { RoomEvents } from './session-types.ts';

/** mediasoup-client ≥ 3.24 no longer reports SCTP capabilities; these ask for SCTP. */
const SCTP_CAPABILITIES = { numStreams: { OS: 1024, MIS: 1024 } };

/** The camera's layers: quarter, half and full resolution. */
export const DEFAULT_SIMULCAST: ms.RtpEncodingParameters[] = [
  { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

export interface Layers {
  spatialLayer: number;
  temporalLayer?: number;
}

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

/** Something this client publishes. Keeps its track across media restarts. */
export class LocalTrack {
  readonly source: ProducerSource;
  readonly track: MediaStreamTrack;
  readonly #media: RoomMedia;
  /** @internal the current producer (undefined while the media restarts) */
  producer: ms.Producer | undefined;
  #muted = false;
  #serverMuted = false;
  #closed = false;

  /** @internal */
  constructor(media: RoomMedia, source: ProducerSource, track: MediaStreamTrack) {
    this.#media = media;
    this.source = source;
    this.track = track;
  }

  get kind(): MediaKind {
    return this.track.kind === 'audio' ? 'audio' : 'video';
  }

  get muted(): boolean {
    return this.#muted;
  }

  /** Muted by the server API (see RoomMediaEvents.serverMuted). */
  get serverMuted(): boolean {
    return this.#serverMuted;
  }

  /** @internal */
  markServerMuted(muted: boolean): void {
    this.#serverMuted = muted;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get producerId(): string | undefined {
    return this.producer?.id;
  }

  /** Stop sending (the others' consumers pause: eventProducerPaused). */
  async mute(): Promise<void> {
    await this.#setMuted(true);
  }

  async unmute(): Promise<void> {
    await this.#setMuted(false);
  }

  /** Stop publishing this track (the track itself is stopped too). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#media.unpublish(this);
  }

  /** @internal */
  markClosed(): void {
    this.#closed = true;
  }

  async #setMuted(muted: boolean): Promise<void> {
    if (this.#closed || this.#muted === muted) return;
    this.#muted = muted;
    const p = this.producer;
    if (p === undefined) return; // applied when it is published again
    const apply = (m: boolean): void => {
      if (m) p.pause();
      else p.resume();
    };
    apply(muted);
    try {
      await this.#media.session.request(muted ? 'pauseProducer' : 'resumeProducer', {
        producerId: p.id,
      });
    } catch (err) {
      // The server did not take it: this side goes back to what the others see.
      if (this.producer === p) {
        this.#muted = !muted;
        apply(!muted);
      }
      throw err;
    }
  }
}

/** Something another member publishes, as this client receives it. */
export interface RemoteTrack {
  readonly consumerId: string;
  readonly producerId: string;
  readonly peer: Peer;
  readonly kind: MediaKind;
  readonly source: ProducerSource;
  readonly track: MediaStreamTrack;
  /** The producer is paused (its owner muted it). */
  readonly paused: boolean;
  /** The layers the SFU forwards now (simulcast), null when none. */
  readonly layers: Layers | null;
  /** The SFU's score of this stream, 0–10. */
  readonly score: number;
}

interface RemoteEntry extends RemoteTrack {
  consumer: ms.Consumer;
  paused: boolean;
  layers: Layers | null;
  score: number;
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

interface Totals {
  at: number;
  sent: number;
  received: number;
}

export class RoomMedia {
  readonly session: Session;
  readonly #opts: Required<Omit<RoomMediaOptions, 'preferredLayers' | 'device'>> &
    Pick<RoomMediaOptions, 'preferredLayers' | 'device'>;
  readonly #events: Emitter<RoomMediaEvents>;
  readonly #offs: (() => void)[] = [];
  readonly #locals = new Set<LocalTrack>();
  readonly #remotes = new Map<string, RemoteEntry>();
  readonly #dataConsumers = new Map<string, ms.DataConsumer>();
  #device: Device | undefined;
  #send: ms.Transport | undefined;
  #recv: ms.Transport | undefined;
  #dataProducer: ms.DataProducer | undefined;
  #generation = 0;
  /** eventMediaReset/rejoin received and not handled yet: what is queued before is stale. */
  #restartsPending = 0;
  #queue: Promise<void> = Promise.resolve();
  #publishing: Promise<void> = Promise.resolve();
  #closed = false;
  #lastTotals: Totals | undefined;

  constructor(session: Session, options: RoomMediaOptions = {}) {
    this.session = session;
    this.#opts = {
      simulcast: options.simulcast ?? true,
      simulcastEncodings: options.simulcastEncodings ?? DEFAULT_SIMULCAST,
      dataChannel: options.dataChannel ?? 'chat',
      serverRequests: options.serverRequests ?? true,
      preferredLayers: options.preferredLayers,
      device: options.device,
    };
    this.#events = new Emitter<RoomMediaEvents>((err, event) => {
      this.#fail(`a listener of ${event} threw`, err);
    });
    const on = <K extends keyof RoomEvents>(
      a: K,
      f: (d: RoomEvents[K]) => void | Promise<void>,
    ): void => {
      this.#offs.push(
        session.on(a, (d) => {
          this.#schedule(a, async () => {
            // Consumers of media that a restart received after them has already destroyed.
            if (this.#restartsPending > 0) return;
            await f(d);
          });
        }),
      );
    };
    on('eventNewConsumer', (d) => this.#consume(d));
    on('eventNewDataConsumer', (d) => this.#consumeData(d));
    on('eventConsumerClosed', (d) => {
      this.#removeRemote(d.consumerId);
    });
    on('eventDataConsumerClosed', (d) => {
      this.#dataConsumers.get(d.dataConsumerId)?.close();
      this.#dataConsumers.delete(d.dataConsumerId);
    });
    on('eventProducerPaused', (d) => {
      this.#setRemotePaused(d.consumerId, true);
    });
    on('eventProducerResumed', (d) => {
      this.#setRemotePaused(d.consumerId, false);
    });
    on('eventProducerMuted', (d) => {
      const local = [...this.#locals].find((l) => l.producerId === d.producerId);
      if (local === undefined) return;
      local.markServerMuted(d.muted);
      this.#events.emit('serverMuted', local);
    });
    on('eventConsumerScore', (d) => {
      const r = this.#remotes.get(d.consumerId);
      if (r === undefined) return;
      r.score = d.score;
      this.#events.emit('trackUpdated', r);
    });
    on('eventConsumerLayersChanged', (d) => {
      const r = this.#remotes.get(d.consumerId);
      if (r === undefined) return;
      r.layers = d.layers;
      this.#events.emit('trackUpdated', r);
    });
    on('eventActiveSpeaker', (d) => {
      this.#events.emit('activeSpeaker', d);
    });
    on('eventLeave', (d) => {
      // In the queue: after the closing of the member's consumers that came before it.
      this.#events.emit('peerLeft', { socketId: d.socketId, userId: d.userId });
    });
    on('eventRoomState', (d) => {
      // Members whose eventLeave this client missed (see eventRoomState) left all the same.
      if (!d.complete) return;
      const present = new Set(d.sessions.map((m) => m.socketId));
      const gone = new Map<string, string>();
      for (const r of this.#remotes.values()) {
        if (!present.has(r.peer.socketId)) gone.set(r.peer.socketId, r.peer.userId);
      }
      for (const [socketId, userId] of gone) this.#events.emit('peerLeft', { socketId, userId });
    });
    this.#offs.push(
      session.on('eventMediaReset', () => {
        this.#restart('reset');
      }),
      session.on('rejoined', () => {
        this.#restart('rejoin');
      }),
      session.on('resumed', () => {
        this.#schedule('resumed', () => this.#restartIceIfNeeded());
      }),
    );
    if (this.#opts.serverRequests) {
      this.#offs.push(
        session.handle('getClientStats', async () => await this.stats()),
        session.handle('requestMute', async ({ source, reason }) => {
          const local = [...this.#locals].find((l) => l.source === source && !l.closed);
          if (local !== undefined) await local.mute();
          const muted = local !== undefined;
          this.#events.emit('muteRequested', {
            source,
            muted,
            ...(reason === undefined ? {} : { reason }),
          });
          return { muted };
        }),
      );
    }
  }

  on<K extends keyof RoomMediaEvents>(
    event: K,
    listener: Listener<RoomMediaEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /** Remote tracks received now. */
  get remoteTracks(): RemoteTrack[] {
    return [...this.#remotes.values()];
  }

  get localTracks(): LocalTrack[] {
    return [...this.#locals];
  }

  /** Media set-ups done: 1 after start(), one more per restart. */
  get generation(): number {
    return this.#generation;
  }

  /** Load the device and create the transports; consuming starts. */
  async start(): Promise<void> {
    await this.#enqueue(() => this.#setup());
  }

  /** Publish the camera (getUserMedia with the room's userMediaConfiguration unless a track is given). */
  async publishCamera(
    opts: { track?: MediaStreamTrack; constraints?: MediaTrackConstraints } = {},
  ): Promise<LocalTrack> {
    const track =
      opts.track ??
      (
        await this.#getUserMedia({
          video: opts.constraints ?? this.#videoConstraints(),
        })
      ).getVideoTracks()[0];
    if (track === undefined) throw new ProtocolError('SYSTEM', 'getUserMedia gave no video track');
    return await this.#publish('camera', track, opts.track === undefined);
  }

  /** Publish the microphone. */
  async publishMicrophone(
    opts: { track?: MediaStreamTrack; constraints?: MediaTrackConstraints } = {},
  ): Promise<LocalTrack> {
    const track =
      opts.track ??
      (await this.#getUserMedia({ audio: opts.constraints ?? true })).getAudioTracks()[0];
    if (track === undefined) throw new ProtocolError('SYSTEM', 'getUserMedia gave no audio track');
    return await this.#publish('microphone', track, opts.track === undefined);
  }

  /** Share the screen (getDisplayMedia); stopping the share in the browser unpublishes it. */
  async publishScreen(opts: { track?: MediaStreamTrack } = {}): Promise<LocalTrack> {
    let track = opts.track;
    if (track === undefined) {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = stream.getVideoTracks()[0];
    }
    if (track === undefined) throw new ProtocolError('SYSTEM', 'getDisplayMedia gave no track');
    const local = await this.#publish('screen', track, opts.track === undefined);
    track.addEventListener('ended', () => {
      this.#events.emit('localTrackEnded', local);
      local.close().catch((err: unknown) => {
        this.#fail('ending the screen share', err);
      });
    });
    return local;
  }

  /** Ask the SFU for other layers of a simulcast remote track. */
  async setPreferredLayers(track: RemoteTrack, layers: Layers): Promise<void> {
    await this.session.request('setConsumerPreferredLayers', {
      consumerId: track.consumerId,
      ...layers,
    });
  }

  /** Send on the data channel (to every other member). */
  sendData(data: string | ArrayBuffer): void {
    const dp = this.#dataProducer;
    if (dp?.readyState !== 'open') {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'the data channel is not open');
    }
    dp.send(data);
  }

  /** This client's media figures (also what the server's getClientStats gets). */
  async stats(): Promise<ClientStats> {
    const at = Date.now();
    let sent = 0;
    let received = 0;
    let packetsLost = 0;
    let rttMs: number | undefined;
    const transports: ClientStats['transports'] = [];
    for (const [direction, t] of [
      ['send', this.#send],
      ['recv', this.#recv],
    ] as const) {
      if (t === undefined || t.closed) continue;
      transports.push({ direction, state: t.connectionState });
      const report = await t.getStats();
      report.forEach((s: Record<string, unknown>) => {
        const n = (k: string): number => (typeof s[k] === 'number' ? s[k] : 0);
        if (s['type'] === 'outbound-rtp') sent += n('bytesSent');
        if (s['type'] === 'inbound-rtp') {
          received += n('bytesReceived');
          packetsLost += Math.max(0, n('packetsLost'));
        }
        if (
          (direction === 'send' || rttMs === undefined) &&
          s['type'] === 'candidate-pair' &&
          s['state'] === 'succeeded' &&
          typeof s['currentRoundTripTime'] === 'number'
        ) {
          rttMs = s['currentRoundTripTime'] * 1000;
        }
      });
    }
    const last = this.#lastTotals;
    this.#lastTotals = { at, sent, received };
    const seconds = last === undefined ? 0 : (at - last.at) / 1000;
    const rate = (now: number, before: number | undefined): number =>
      seconds <= 0 || before === undefined ? 0 : Math.max(0, ((now - before) * 8) / seconds);
    return {
      at,
      transports,
      producers: [...this.#locals]
        .filter((l) => l.producer !== undefined && !l.closed)
        .map((l) => ({
          id: l.producerId ?? '',
          kind: l.kind,
          source: l.source,
          paused: l.muted,
        })),
      consumers: [...this.#remotes.values()].map((r) => ({
        id: r.consumerId,
        kind: r.kind,
        peer: r.peer,
        paused: r.paused,
      })),
      sendBitrate: Math.round(rate(sent, last?.sent)),
      recvBitrate: Math.round(rate(received, last?.received)),
      packetsLost,
      ...(rttMs === undefined ? {} : { rttMs: Math.round(rttMs * 10) / 10 }),
    };
  }

  /** Stop everything this client sends and receives (the session stays). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#offs) off();
    await this.#queue; // a set-up in progress finishes first, then is torn down
    await this.#publishing;
    for (const l of this.#locals) {
      l.markClosed();
      l.track.stop();
    }
    this.#locals.clear();
    this.#teardown();
  }

  // ------------------------------------------------------------------- internals

  /** @internal LocalTrack.close() */
  async unpublish(local: LocalTrack): Promise<void> {
    this.#locals.delete(local);
    const p = local.producer;
    local.producer = undefined;
    local.track.stop();
    if (p === undefined) return;
    p.close();
    await this.session.request('closeProducer', { producerId: p.id });
  }

  /** Run `f` after everything queued before it; rejects with its failure (for the caller). */
  #enqueue(f: () => void | Promise<void>): Promise<void> {
    const p = this.#queue.then(f);
    this.#queue = p.catch(() => undefined); // the caller of #enqueue has the failure
    return p;
  }

  /** #enqueue for events, which nobody awaits: a failure becomes an `error` event. */
  #schedule(what: string, f: () => void | Promise<void>): void {
    this.#enqueue(f).catch((err: unknown) => {
      this.#fail(what, err);
    });
  }

  #fail(context: string, err: unknown): void {
    this.session.reportError(
      err instanceof Error ? err : new Error(String(err)),
      `media: ${context}`,
    );
  }

  async #getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream> {
    return await navigator.mediaDevices.getUserMedia(constraints);
  }

  #videoConstraints(): MediaTrackConstraints {
    const v = this.session.joinReply.userMediaConfiguration.video;
    return {
      width: { max: v.width.max },
      height: { max: v.height.max },
      frameRate: {
        ...(v.frameRate.min === undefined ? {} : { min: v.frameRate.min }),
        ...(v.frameRate.max === undefined ? {} : { max: v.frameRate.max }),
      },
    };
  }

  /** `owned`: the SDK opened the track (getUserMedia), so it stops it when publishing fails. */
  async #publish(
    source: ProducerSource,
    track: MediaStreamTrack,
    owned: boolean,
  ): Promise<LocalTrack> {
    if (this.#closed) {
      if (owned) track.stop();
      throw new ProtocolError('CANCELLED', 'the media is closed');
    }
    const local = new LocalTrack(this, source, track);
    this.#locals.add(local);
    // Publishing runs beside the event queue: a member that joins consumes the others while
    // its own tracks go out. A restart waits for it before tearing down.
    const p = this.#produce(local);
    this.#publishing = p.catch(() => undefined); // the caller of publish*() has the failure
    try {
      await p;
    } catch (err) {
      // Not published: not to be published again by a restart either.
      this.#locals.delete(local);
      local.markClosed();
      if (owned) track.stop();
      throw err;
    }
    return local;
  }

  async #produce(local: LocalTrack): Promise<void> {
    await this.#queue; // the transports of the current generation exist
    const send = this.#send;
    if (send === undefined || local.closed) return;
    const simulcast = local.source === 'camera' && this.#opts.simulcast;
    const producer = await send.produce({
      track: local.track,
      stopTracks: false,
      ...(simulcast ? { encodings: this.#opts.simulcastEncodings } : {}),
      appData: { source: local.source, paused: local.muted },
    });
    // Closed or restarted while the producer was being created: it is not wanted any more.
    if (!this.#locals.has(local) || send !== this.#send) {
      producer.close();
      return;
    }
    if (local.muted) producer.pause();
    local.producer = producer;
  }

  async #setup(): Promise<void> {
    const session = this.session;
    const device = this.#opts.device?.() ?? new Device();
    // The protocol's schemas check shape and bounds; mediasoup-client's types are stricter
    // about optional fields the server always sends.
    const caps = await session.request('getRouterRtpCapabilities', {});
    await device.load({ routerRtpCapabilities: caps as ms.RtpCapabilities });
    this.#device = device;
    const { transport: send, sctp } = await this.#transport(device, 'send');
    send.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
      const source = (appData['source'] as ProducerSource | undefined) ?? 'other';
      session
        .request('produce', {
          transportId: send.id,
          kind,
          rtpParameters: rtpParameters as never,
          source,
          paused: appData['paused'] === true,
        })
        .then(ok, fail);
    });
    send.on('producedata', ({ sctpStreamParameters, label, protocol }, ok, fail) => {
      session
        .request('produceData', {
          transportId: send.id,
          sctpStreamParameters: sctpStreamParameters as { streamId: number },
          label,
          protocol,
        })
        .then(ok, fail);
    });
    await this.#transport(device, 'recv');
    this.#generation++;

    const label = this.#opts.dataChannel;
    if (label !== false && sctp) {
      // Beside the queue, like publishing: it needs the send transport connected.
      void send
        .produceData({ label, protocol: 'text', ordered: true })
        .then((dp) => {
          if (send === this.#send) this.#dataProducer = dp;
          else dp.close();
        })
        .catch((err: unknown) => {
          this.#fail('opening the data channel', err);
        });
    }
  }

  /**
   * A WebRTC transport of this generation, with the join's ICE servers; a receiving one
   * carries the device's RTP capabilities (the SFU consumes for it with them).
   */
  async #transport(
    device: Device,
    direction: 'send' | 'recv',
  ): Promise<{ transport: ms.Transport; sctp: boolean }> {
    const session = this.session;
    const info = await session.request('createWebRtcTransport', {
      direction,
      sctpCapabilities: SCTP_CAPABILITIES,
      ...(direction === 'recv' ? { rtpCapabilities: device.recvRtpCapabilities as never } : {}),
    });
    const iceServers = session.joinReply.iceServers;
    const options = { ...info, ...(iceServers === undefined ? {} : { iceServers }) };
    const t =
      direction === 'send'
        ? device.createSendTransport(options as ms.TransportOptions)
        : device.createRecvTransport(options as ms.TransportOptions);
    if (direction === 'send') this.#send = t;
    else this.#recv = t;
    this.#watch(t, direction);
    t.on('connect', ({ dtlsParameters }, ok, fail) => {
      session
        .request('connectWebRtcTransport', { transportId: t.id, dtlsParameters })
        .then(ok, fail);
    });
    return { transport: t, sctp: info.sctpParameters !== undefined };
  }

  #watch(t: ms.Transport, direction: 'send' | 'recv'): void {
    t.on('connectionstatechange', (state) => {
      if (t !== this.#send && t !== this.#recv) return; // an earlier generation's
      this.#events.emit('transportState', { direction, state });
      if (state === 'failed' && this.session.state === 'connected') {
        this.#schedule('restartIce', () => this.#restartIce(t));
      }
    });
  }

  async #restartIceIfNeeded(): Promise<void> {
    for (const t of [this.#send, this.#recv]) {
      if (t !== undefined && !t.closed && ['failed', 'disconnected'].includes(t.connectionState)) {
        await this.#restartIce(t);
      }
    }
  }

  async #restartIce(t: ms.Transport): Promise<void> {
    if (t.closed) return;
    const { iceParameters } = await this.session.request('restartIce', { transportId: t.id });
    await t.restartIce({ iceParameters });
  }

  #restart(reason: 'reset' | 'rejoin'): void {
    if (this.#closed) return;
    this.#restartsPending++;
    this.#schedule(`restart (${reason})`, async () => {
      this.#restartsPending--;
      await this.#publishing;
      this.#teardown();
      await this.#setup();
      this.#events.emit('restarted', { reason, generation: this.#generation });
      const locals = [...this.#locals].filter((l) => !l.closed);
      const p = Promise.all(
        locals.map(async (l) => {
          await this.#produce(l);
        }),
      ).then(() => undefined);
      this.#publishing = p.catch((err: unknown) => {
        this.#fail('publishing again', err);
      });
    });
  }

  #teardown(): void {
    for (const id of [...this.#remotes.keys()]) this.#removeRemote(id);
    for (const dc of this.#dataConsumers.values()) dc.close();
    this.#dataConsumers.clear();
    for (const l of this.#locals) {
      l.producer?.close();
      l.producer = undefined;
    }
    this.#dataProducer?.close();
    this.#dataProducer = undefined;
    this.#send?.close();
    this.#recv?.close();
    this.#send = undefined;
    this.#recv = undefined;
    this.#device = undefined;
    this.#lastTotals = undefined;
  }

  async #consume(d: RoomEvents['eventNewConsumer']): Promise<void> {
    const recv = this.#recv;
    if (recv === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no receive transport');
    const consumer = await recv.consume({
      id: d.id,
      producerId: d.producerId,
      kind: d.kind,
      rtpParameters: d.rtpParameters as ms.RtpParameters,
    });
    const entry: RemoteEntry = {
      consumerId: consumer.id,
      producerId: d.producerId,
      peer: d.peer,
      kind: d.kind,
      source: d.source,
      track: consumer.track,
      paused: d.producerPaused,
      layers: null,
      score: 10,
      consumer,
    };
    this.#remotes.set(consumer.id, entry);
    this.#events.emit('trackAdded', entry);
    await this.session.request('resumeConsumer', { consumerId: consumer.id });
    const layers = this.#opts.preferredLayers;
    if (layers !== undefined && d.kind === 'video' && d.type === 'simulcast') {
      await this.setPreferredLayers(entry, layers);
    }
  }

  async #consumeData(d: RoomEvents['eventNewDataConsumer']): Promise<void> {
    const recv = this.#recv;
    if (recv === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no receive transport');
    const dc = await recv.consumeData({
      id: d.id,
      dataProducerId: d.dataProducerId,
      sctpStreamParameters: d.sctpStreamParameters,
      label: d.label,
      protocol: d.protocol,
    });
    this.#dataConsumers.set(dc.id, dc);
    dc.on('message', (data: string | ArrayBuffer) => {
      this.#events.emit('data', { peer: d.peer, label: d.label, data });
    });
  }

  #removeRemote(consumerId: string): void {
    const r = this.#remotes.get(consumerId);
    if (r === undefined) return;
    this.#remotes.delete(consumerId);
    r.consumer.close();
    this.#events.emit('trackRemoved', r);
  }

  #setRemotePaused(consumerId: string, paused: boolean): void {
    const r = this.#remotes.get(consumerId);
    if (r === undefined) return;
    r.paused = paused;
    if (paused) r.consumer.pause();
    else r.consumer.resume();
    this.#events.emit(paused ? 'trackMuted' : 'trackUnmuted', r);
  }

  /** The device in use (undefined before start and while restarting). */
  get device(): Device | undefined {
    return this.#device;
  }
}
