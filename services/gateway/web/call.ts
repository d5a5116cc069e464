/**
 * One call: a joined Session with its RoomMedia, this client's tracks and a tile per remote
 * member. The page (demo.ts) makes one per join and drops it on leave.
 */
import {
  RoomMedia,
  type CloseInfo,
  type LocalTrack,
  type RemoteTrack,
  type Session,
  type SessionState,
} from '@switchboard/client';
import { summarize, type StatsOverlay, type StatsSummary } from './stats.ts';
import { Tile, byId, describeError, el, type VideoState } from './ui.ts';

/** What the page does with what happens in the call. */
export interface CallHooks {
  error(text: string): void;
  /** A passing event for the status bar (resumed, rejoined, restarted…). */
  flash(text: string): void;
  sessionState(state: SessionState): void;
  transportState(direction: 'send' | 'recv', state: string): void;
  /** The session ended by itself (refused, replaced): the call is over. */
  ended(info: CloseInfo): void;
  /** A local track changed (published, muted, closed): the controls follow. */
  changed(): void;
  /** The browser refused to autoplay this audio (no user gesture yet). */
  audioBlocked(audio: HTMLAudioElement): void;
  /** A chat message arrived (or was sent). */
  chat(message: ChatMessage): void;
}

export interface Counters {
  resumed: number;
  rejoined: number;
  restarts: number;
}

export interface TileState {
  socketId: string;
  userId: string;
  videos: VideoState[];
  audio: number;
}

export interface ChatMessage {
  from: string;
  text: string;
  at: number;
}

export interface LocalTrackState {
  muted: boolean;
  producerId: string | null;
}

type Mutable = 'camera' | 'microphone';

const RECEIVE_ONLY = window.isSecureContext
  ? 'receiving only'
  : 'receiving only: camera and microphone need https or localhost';

const localState = (t: LocalTrack | undefined): LocalTrackState | null =>
  t === undefined || t.closed ? null : { muted: t.muted, producerId: t.producerId ?? null };

export class Call {
  readonly session: Session;
  readonly media: RoomMedia;
  /** Shown for this client (its own; the server API may rename it). */
  name: string;
  camera: LocalTrack | undefined;
  microphone: LocalTrack | undefined;
  screen: LocalTrack | undefined;
  /** socketId of the latest active speaker. */
  activeSpeaker: string | null = null;
  stats: StatsSummary | null = null;
  readonly transports: { send: string | null; recv: string | null } = { send: null, recv: null };
  /** The chat, over the data channel (own messages included). */
  readonly messages: ChatMessage[] = [];
  readonly #hooks: CallHooks;
  readonly #counters: Counters;
  readonly #grid: HTMLElement;
  readonly #overlay: StatsOverlay;
  readonly #local: Tile;
  readonly #tiles = new Map<string, { tile: Tile; userId: string }>();
  /** Who is in the room (joinR.sessions, then eventJoin/eventLeave): socketId → shown name. */
  readonly #members = new Map<string, string>();
  readonly #memberList: HTMLElement;
  readonly #offs: (() => void)[] = [];
  /** Errors the session's `error` event has shown already. */
  readonly #reported = new WeakSet<Error>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling = false;
  #over = false;

  constructor(
    session: Session,
    name: string,
    ui: { grid: HTMLElement; overlay: StatsOverlay; counters: Counters; hooks: CallHooks },
  ) {
    this.session = session;
    this.name = name;
    this.media = new RoomMedia(session);
    this.#hooks = ui.hooks;
    this.#counters = ui.counters;
    this.#grid = ui.grid;
    this.#overlay = ui.overlay;
    this.#local = new Tile({ label: `you (${name})` });
    this.#grid.replaceChildren(this.#local.root);
    this.#memberList = byId('member-list', HTMLUListElement);
    this.#resetMembers();
    this.#renderLocal();
    this.#listen();
  }

  /** Left, or ended by the session (a method: it changes across awaits). */
  isOver(): boolean {
    return this.#over;
  }

  /** Start the media and publish camera and microphone (receive-only when they fail). */
  async start(publish: { camera: boolean; microphone: boolean }): Promise<void> {
    try {
      await this.media.start();
    } catch (err) {
      if (this.isOver()) return; // left meanwhile: the media was closed under it
      // RoomMedia reports a failed start as an `error` event too: show it once.
      if (err instanceof Error && this.#reported.has(err)) return;
      throw err;
    }
    if (this.isOver()) return;
    this.#timer = setInterval(() => {
      this.#pollStats().catch((err: unknown) => {
        this.#hooks.error(`stats: ${describeError(err)}`);
      });
    }, 1000);
    const [camera, microphone] = await Promise.allSettled([
      publish.camera ? this.media.publishCamera() : undefined,
      publish.microphone ? this.media.publishMicrophone() : undefined,
    ]);
    if (this.isOver()) return;
    if (camera.status === 'fulfilled') {
      this.camera = camera.value;
      if (camera.value !== undefined) {
        this.#local.addVideo('camera', 'camera', camera.value.track, camera.value.muted);
      }
    } else {
      this.#hooks.error(`camera: ${describeError(camera.reason)} (${RECEIVE_ONLY})`);
    }
    if (microphone.status === 'fulfilled') this.microphone = microphone.value;
    else this.#hooks.error(`microphone: ${describeError(microphone.reason)} (${RECEIVE_ONLY})`);
    this.#renderLocal();
    this.#hooks.changed();
  }

  async setMuted(which: Mutable, muted: boolean): Promise<void> {
    const track = this[which];
    if (track === undefined || track.closed) throw new Error(`no ${which} is published`);
    try {
      if (muted) await track.mute();
      else await track.unmute();
    } finally {
      this.#renderLocal();
      this.#hooks.changed();
    }
  }

  /** Share the screen, or stop sharing it. */
  async shareScreen(on: boolean): Promise<void> {
    const current = this.screen;
    if (!on) {
      if (current === undefined) return;
      this.#screenEnded(current);
      await current.close();
      return;
    }
    if (current !== undefined && !current.closed) return;
    const screen = await this.media.publishScreen();
    if (this.isOver()) return;
    this.screen = screen;
    this.#local.addVideo('screen', 'screen', screen.track, false);
    // Stopped from the browser's own "stop sharing": the SDK unpublishes it, the page follows.
    screen.track.addEventListener(
      'ended',
      () => {
        this.#screenEnded(screen);
      },
      { once: true },
    );
    this.#hooks.changed();
  }

  /**
   * Ask for a lower or higher quality of `userId`'s camera: the simulcast layer the SFU
   * forwards (0 the smallest; above the highest, the highest).
   */
  async setVideoQuality(userId: string, spatialLayer: number): Promise<void> {
    const track = this.media.remoteTracks.find(
      (t) => t.peer.userId === userId && t.kind === 'video' && t.source === 'camera',
    );
    if (track === undefined) throw new Error(`no camera of ${userId} is received`);
    await this.media.setPreferredLayers(track, { spatialLayer });
  }

  /** Send a chat message to everyone on the data channel. */
  sendChat(text: string): void {
    this.media.sendData(text);
    this.#chat({ from: this.name, text, at: Date.now() });
  }

  #chat(message: ChatMessage): void {
    this.messages.push(message);
    if (this.messages.length > 200) this.messages.shift();
    this.#hooks.chat(message);
  }

  /** Leave the room: the session ends at once on the server; the media is closed. */
  async leave(): Promise<void> {
    if (this.#over) return;
    this.#finish();
    try {
      await this.session.leave();
    } finally {
      await this.media.close();
    }
  }

  tiles(): TileState[] {
    return [...this.#tiles].map(([socketId, { tile, userId }]) => ({
      socketId,
      userId,
      videos: tile.videoStates(),
      audio: tile.audioCount,
    }));
  }

  local(): Record<'camera' | 'microphone' | 'screen', LocalTrackState | null> {
    return {
      camera: localState(this.camera),
      microphone: localState(this.microphone),
      screen: localState(this.screen),
    };
  }

  /** Every audio element of the call (to start them after a user gesture). */
  audios(): HTMLAudioElement[] {
    return [...this.#tiles.values()].flatMap(({ tile }) => tile.audios());
  }

  /** The names of the members, this client first. */
  members(): string[] {
    return [...this.#memberList.children].map((li) => li.textContent);
  }

  // ------------------------------------------------------------------ internals

  #resetMembers(): void {
    this.#members.clear();
    for (const m of this.session.joinReply.sessions)
      this.#members.set(m.socketId, m.name ?? m.userId);
    this.#renderMembers();
    // A room bigger than joinR lists: the rest, page by page.
    if (this.session.joinReply.sessionsNext === undefined) return;
    this.session.members().then(
      (all) => {
        for (const m of all) this.#members.set(m.socketId, m.name ?? m.userId);
        this.#renderMembers();
      },
      (err: unknown) => {
        console.warn('listing the members failed', err);
      },
    );
  }

  #renderMembers(): void {
    const items = [el('li', 'you', `you (${this.name})`)];
    for (const name of this.#members.values()) items.push(el('li', undefined, name));
    this.#memberList.replaceChildren(...items);
  }

  #listen(): void {
    const s = this.session;
    const m = this.media;
    const hooks = this.#hooks;
    // Errors of the session (and of the media, which reports through it) come here even after
    // the call is over: those of a call left on purpose are its echoes, for the console only.
    s.on('error', ({ error, context }) => {
      this.#reported.add(error);
      const text = `${context}: ${describeError(error)}`;
      if (this.#over) console.warn(`[demo] after leaving: ${text}`);
      else hooks.error(text);
    });
    this.#offs.push(
      s.on('state', ({ state }) => {
        hooks.sessionState(state);
      }),
      s.on('disconnected', ({ code }) => {
        hooks.flash(`connection lost (${code}), reconnecting…`);
      }),
      s.on('retrying', ({ attempt, error, retryInMs }) => {
        const inS = Math.round(retryInMs / 100) / 10;
        hooks.flash(`retry ${attempt} in ${inS} s (${describeError(error)})`);
      }),
      s.on('resumed', ({ offlineMs }) => {
        this.#counters.resumed++;
        hooks.flash(`resumed after ${offlineMs} ms`);
      }),
      s.on('eventJoin', (m) => {
        this.#members.set(m.socketId, m.name ?? m.userId);
        this.#renderMembers();
      }),
      s.on('eventLeave', ({ socketId }) => {
        this.#members.delete(socketId);
        this.#renderMembers();
      }),
      // The room as it is now, after this client may have missed some of the above.
      s.on('eventRoomState', ({ sessions }) => {
        this.#members.clear();
        for (const m of sessions) this.#members.set(m.socketId, m.name ?? m.userId);
        this.#renderMembers();
      }),
      // The server API renamed someone (this client's own copy carries its grants).
      s.on('eventParticipantUpdated', (p) => {
        if (p.socketId === s.socketId) {
          if (p.name !== undefined) this.name = p.name;
        } else if (this.#members.has(p.socketId)) {
          this.#members.set(p.socketId, p.name ?? p.userId);
        }
        this.#renderMembers();
      }),
      // Data the server API sent: shown in the chat, from "server".
      s.on('eventData', ({ payload, topic }) => {
        this.#chat({
          from: topic === undefined ? 'server' : `server/${topic}`,
          text: payload,
          at: Date.now(),
        });
      }),
      m.on('serverMuted', (t) => {
        hooks.flash(
          t.serverMuted
            ? `your ${t.source} was muted by the server`
            : `your ${t.source} was unmuted`,
        );
      }),
      s.on('rejoined', ({ offlineMs }) => {
        this.#resetMembers();
        this.#counters.rejoined++;
        hooks.flash(`rejoined (a new member) after ${offlineMs} ms`);
      }),
      s.on('closed', (info) => {
        if (info.reason === 'left' || this.#over) return;
        this.#finish();
        this.media.close().catch((err: unknown) => {
          hooks.error(`closing the media: ${describeError(err)}`);
        });
        hooks.ended(info);
      }),
      m.on('trackAdded', (t) => {
        this.#addRemote(t);
      }),
      m.on('trackRemoved', (t) => {
        const entry = this.#tiles.get(t.peer.socketId);
        if (entry === undefined) return;
        entry.tile.remove(t.consumerId);
        if (entry.tile.empty) this.#dropTile(t.peer.socketId);
      }),
      m.on('trackMuted', (t) => {
        this.#tiles.get(t.peer.socketId)?.tile.setPaused(t.consumerId, true);
      }),
      m.on('trackUnmuted', (t) => {
        this.#tiles.get(t.peer.socketId)?.tile.setPaused(t.consumerId, false);
      }),
      m.on('data', ({ peer, data }) => {
        const text = typeof data === 'string' ? data : `<${String(data.byteLength)} bytes>`;
        this.#chat({ from: peer.userId, text, at: Date.now() });
      }),
      m.on('peerLeft', ({ socketId }) => {
        this.#dropTile(socketId);
      }),
      m.on('activeSpeaker', ({ peer }) => {
        this.#setSpeaker(peer.socketId);
      }),
      m.on('restarted', ({ reason, generation }) => {
        this.#counters.restarts++;
        hooks.flash(`media restarted (${reason}, generation ${generation})`);
        this.#renderLocal();
        hooks.changed();
      }),
      m.on('transportState', ({ direction, state }) => {
        this.transports[direction] = state;
        hooks.transportState(direction, state);
      }),
      m.on('muteRequested', ({ source, reason, muted }) => {
        const why = reason === undefined ? '' : `: ${reason}`;
        hooks.flash(`a moderator asked to mute your ${source}${why}`);
        if (muted) {
          this.#renderLocal();
          hooks.changed();
        }
      }),
    );
  }

  #addRemote(t: RemoteTrack): void {
    const { socketId, userId } = t.peer;
    let entry = this.#tiles.get(socketId);
    if (entry === undefined) {
      entry = { tile: new Tile({ label: userId, socketId }), userId };
      this.#tiles.set(socketId, entry);
      this.#grid.append(entry.tile.root);
      entry.tile.speaking = this.activeSpeaker === socketId;
    }
    if (t.kind === 'video') {
      entry.tile.addVideo(t.consumerId, t.source, t.track, t.paused);
      return;
    }
    const audio = entry.tile.addAudio(t.consumerId, t.source, t.track, t.paused);
    audio.play().catch((err: unknown) => {
      if (err instanceof DOMException && err.name === 'NotAllowedError') {
        this.#hooks.audioBlocked(audio);
      } else if (audio.isConnected) {
        // AbortError of an element already removed (its track went away) is no failure.
        this.#hooks.error(`playing the audio of ${userId}: ${describeError(err)}`);
      }
    });
  }

  #dropTile(socketId: string): void {
    this.#tiles.get(socketId)?.tile.destroy();
    this.#tiles.delete(socketId);
  }

  #setSpeaker(socketId: string): void {
    this.activeSpeaker = socketId;
    for (const [id, { tile }] of this.#tiles) tile.speaking = id === socketId;
    this.#local.speaking = socketId === this.session.socketId;
  }

  #screenEnded(screen: LocalTrack): void {
    if (this.screen !== screen) return;
    this.screen = undefined;
    this.#local.remove('screen');
    this.#hooks.changed();
  }

  #renderLocal(): void {
    const cam = this.camera;
    const mic = this.microphone;
    if (cam !== undefined) this.#local.setPaused('camera', cam.muted);
    this.#local.setLocalFlags({
      cameraOff: cam === undefined || cam.muted,
      micOff: mic === undefined || mic.muted,
    });
  }

  async #pollStats(): Promise<void> {
    if (this.#polling || this.isOver()) return;
    this.#polling = true;
    try {
      const stats = summarize(await this.media.stats());
      if (this.isOver()) return;
      this.stats = stats;
      this.#overlay.show(stats);
    } finally {
      this.#polling = false;
    }
  }

  /** Stop listening and drawing (the session and media are closed by the caller). */
  #finish(): void {
    this.#over = true;
    for (const off of this.#offs) off();
    this.#offs.length = 0;
    clearInterval(this.#timer);
    for (const socketId of [...this.#tiles.keys()]) this.#dropTile(socketId);
    this.#local.destroy();
    this.#overlay.clear();
  }
}
