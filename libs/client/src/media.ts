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
 * Browsers only (mediasoup-client needs RTCPeerConnection). Its parts: Transports (one
 * generation's WebRTC), LocalTrack, RemoteTrack records, the browser's media (capture.ts).
 */
import type { Device, types as ms } from 'mediasoup-client';
import { ProtocolError, type ClientStats, type ProducerSource } from '@switchboard/protocol';
import { cameraTrack, microphoneTrack, screenTrack, videoConstraints } from './capture.ts';
import { Emitter, type Listener } from './emitter.ts';
import { LocalTrack } from './local-track.ts';
import type { RoomMediaEvents, RoomMediaOptions } from './media-types.ts';
import {
  receivedTrack,
  type Layers,
  type ReceivedTrack,
  type RemoteTrack,
} from './remote-track.ts';
import type { Session } from './session.ts';
import type { RoomEvents } from './session-types.ts';
import { Transports, type IncomingData } from './transports.ts';

export { LocalTrack } from './local-track.ts';
export type { Layers, RemoteTrack } from './remote-track.ts';
export type { IncomingData } from './transports.ts';

/** The camera's layers: quarter, half and full resolution. */
export const DEFAULT_SIMULCAST: ms.RtpEncodingParameters[] = [
  { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

export class RoomMedia {
  readonly session: Session;
  readonly #opts: Required<Omit<RoomMediaOptions, 'preferredLayers' | 'device'>> &
    Pick<RoomMediaOptions, 'preferredLayers' | 'device'>;
  readonly #events: Emitter<RoomMediaEvents>;
  readonly #offs: (() => void)[] = [];
  readonly #locals = new Set<LocalTrack>();
  readonly #remotes = new Map<string, ReceivedTrack>();
  /** This generation's transports (set up by start() and by each restart). */
  #transports: Transports;
  #generation = 0;
  /** eventMediaReset/rejoin received and not handled yet: what is queued before is stale. */
  #restartsPending = 0;
  #queue: Promise<void> = Promise.resolve();
  #publishing: Promise<void> = Promise.resolve();
  #closed = false;
  /** The bytes of the last stats(), for the bitrates of the next. */
  #lastTotals: { at: number; sent: number; received: number } | undefined;

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
    this.#transports = this.#newTransports();
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
    on('eventNewDataConsumer', (d) => this.#transports.consumeData(d));
    on('eventConsumerClosed', (d) => {
      this.#removeRemote(d.consumerId);
    });
    on('eventDataConsumerClosed', (d) => {
      this.#transports.closeDataConsumer(d.dataConsumerId);
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
        this.#schedule('resumed', () => this.#transports.restartIceIfNeeded());
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

  /**
   * The ids of this generation's transports on the server (undefined before start and while
   * restarting): what the server's transport actions (getTransportStats) take.
   */
  get transportIds(): { send: string | undefined; recv: string | undefined } {
    return this.#transports.ids;
  }

  /** The data channels the others opened, as this client receives them now. */
  get incomingData(): IncomingData[] {
    return this.#transports.incomingData;
  }

  /** The device in use (undefined before start and while restarting). */
  get device(): Device | undefined {
    return this.#transports.device;
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
      (await cameraTrack(opts.constraints ?? videoConstraints(this.session.joinReply)));
    return await this.#publish('camera', track, opts.track === undefined);
  }

  /** Publish the microphone. */
  async publishMicrophone(
    opts: { track?: MediaStreamTrack; constraints?: MediaTrackConstraints } = {},
  ): Promise<LocalTrack> {
    const track = opts.track ?? (await microphoneTrack(opts.constraints ?? true));
    return await this.#publish('microphone', track, opts.track === undefined);
  }

  /** Share the screen (getDisplayMedia); stopping the share in the browser unpublishes it. */
  async publishScreen(opts: { track?: MediaStreamTrack } = {}): Promise<LocalTrack> {
    const track = opts.track ?? (await screenTrack());
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
    const dp = this.#transports.dataProducer;
    if (dp?.readyState !== 'open') {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'the data channel is not open');
    }
    dp.send(data);
  }

  /** This client's media figures (also what the server's getClientStats gets). */
  async stats(): Promise<ClientStats> {
    const at = Date.now();
    const { transports, sent, received, packetsLost, rttMs } = await this.#transports.figures();
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
    for (const l of this.#locals) l.markClosed(true);
    this.#locals.clear();
    this.#teardown();
  }

  // ------------------------------------------------------------------- internals

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
    const local = new LocalTrack(this.session, source, track);
    local.onClose(() => {
      this.#locals.delete(local);
    });
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
      local.markClosed(owned);
      throw err;
    }
    return local;
  }

  async #produce(local: LocalTrack): Promise<void> {
    await this.#queue; // the transports of the current generation exist
    const transports = this.#transports;
    if (local.closed) return;
    const simulcast = local.source === 'camera' && this.#opts.simulcast;
    const producer = await transports.produce(
      local.track,
      { source: local.source, paused: local.muted },
      simulcast ? this.#opts.simulcastEncodings : undefined,
    );
    if (producer === undefined) return; // no send transport
    // Closed or restarted while the producer was being created: it is not wanted any more.
    if (!this.#locals.has(local) || transports !== this.#transports) {
      producer.close();
      return;
    }
    local.published(producer);
  }

  async #setup(): Promise<void> {
    await this.#transports.setup();
    this.#generation++;
  }

  /** A generation's transports, heard while they are the current ones. */
  #newTransports(): Transports {
    const t = new Transports(this.session, {
      dataChannel: this.#opts.dataChannel,
      device: this.#opts.device,
      fail: (context, err) => {
        this.#fail(context, err);
      },
    });
    t.on('transportState', ({ direction, state }) => {
      this.#events.emit('transportState', { direction, state });
      if (state === 'failed' && this.session.state === 'connected') {
        this.#schedule('restartIce', () => t.restartIce(direction));
      }
    });
    t.on('data', (message) => {
      this.#events.emit('data', message);
    });
    return t;
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

  /** Everything of this generation goes; the next one's transports wait for #setup. */
  #teardown(): void {
    for (const id of [...this.#remotes.keys()]) this.#removeRemote(id);
    for (const l of this.#locals) l.transportClosed();
    this.#transports.close();
    this.#transports = this.#newTransports();
    this.#lastTotals = undefined;
  }

  async #consume(d: RoomEvents['eventNewConsumer']): Promise<void> {
    const remote = receivedTrack(await this.#transports.consume(d), d);
    this.#remotes.set(remote.consumerId, remote);
    this.#events.emit('trackAdded', remote);
    try {
      await this.session.request('resumeConsumer', { consumerId: remote.consumerId });
    } catch (err) {
      // The server closed the consumer between its offer and this resume (its producer
      // closed, its member left): the eventConsumerClosed queued behind removes the track.
      if (err instanceof ProtocolError && err.errorName === 'MEDIA_NOT_FOUND') return;
      throw err;
    }
    const layers = this.#opts.preferredLayers;
    if (layers !== undefined && d.kind === 'video' && d.type === 'simulcast') {
      await this.setPreferredLayers(remote, layers);
    }
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
}
