/**
 * The demo's DOM pieces: a tiny element helper, the error text of anything thrown, and the
 * video tiles (one per member: its videos, its audio, its badges).
 */

/** A new element with a class and a text (both optional). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className !== undefined) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The element of the page with this id (the page is broken when it is missing). */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page has no #${id} (${type.name})`);
  return e;
}

/** One line about `err`: a ProtocolError as `ERROR_NAME: message`. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const errorName = (err as { errorName?: unknown }).errorName;
    if (typeof errorName === 'string') return `${errorName}: ${err.message}`;
    return err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
  }
  return String(err);
}

export interface VideoState {
  consumerId: string;
  source: string;
  paused: boolean;
  frames: number;
  /** The size of the frames the element shows now (0 before the first). */
  width: number;
  height: number;
}

/** A `<video>` for one track, counting the frames it renders. */
class VideoView {
  readonly video = el('video');
  readonly source: string;
  paused: boolean;
  frames = 0;
  #stopped = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(key: string, source: string, track: MediaStreamTrack, paused: boolean) {
    this.source = source;
    this.paused = paused;
    const v = this.video;
    v.autoplay = true;
    v.muted = true;
    v.playsInline = true;
    v.className = source;
    v.dataset['consumerId'] = key;
    v.dataset['source'] = source;
    v.dataset['frames'] = '0';
    v.srcObject = new MediaStream([track]);
    this.setPaused(paused);
    this.#count();
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    this.video.dataset['paused'] = String(paused);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.video.srcObject = null;
  }

  #setFrames(n: number): void {
    this.frames = n;
    this.video.dataset['frames'] = String(n);
  }

  #count(): void {
    const v = this.video;
    if ('requestVideoFrameCallback' in v) {
      const tick = (): void => {
        if (this.#stopped) return;
        this.#setFrames(this.frames + 1);
        v.requestVideoFrameCallback(tick);
      };
      v.requestVideoFrameCallback(tick);
      return;
    }
    this.#timer = setInterval(() => {
      this.#setFrames(this.video.getVideoPlaybackQuality().totalVideoFrames);
    }, 250);
  }
}

interface AudioView {
  audio: HTMLAudioElement;
  source: string;
  paused: boolean;
}

export interface TileOptions {
  label: string;
  /** The remote member's socketId (`data-socket-id`); none for this client's own tile. */
  socketId?: string;
}

/** One member on the grid: a 16:9 stage with its videos, a caption and badges. */
export class Tile {
  readonly root = el('figure', 'tile');
  readonly #stage = el('div', 'stage');
  readonly #badges = el('span', 'badges');
  readonly #videos = new Map<string, VideoView>();
  readonly #audios = new Map<string, AudioView>();
  /** Badges that hold whatever the tracks say (the own tile: nothing published). */
  #cameraOff = false;
  #micOff = false;

  constructor(opts: TileOptions) {
    if (opts.socketId === undefined) this.root.dataset['local'] = 'true';
    else this.root.dataset['socketId'] = opts.socketId;
    const caption = el('figcaption');
    caption.append(el('span', 'name', opts.label), this.#badges);
    this.root.append(this.#stage, caption);
    this.root.setAttribute('aria-label', opts.label);
    this.#render();
  }

  get empty(): boolean {
    return this.#videos.size === 0 && this.#audios.size === 0;
  }

  addVideo(key: string, source: string, track: MediaStreamTrack, paused: boolean): void {
    this.remove(key);
    const view = new VideoView(key, source, track, paused);
    view.video.setAttribute('aria-label', `${source} video`);
    this.#videos.set(key, view);
    this.#stage.append(view.video);
    this.#render();
  }

  /** The `<audio>` for the track; the caller starts it (autoplay may be refused). */
  addAudio(
    key: string,
    source: string,
    track: MediaStreamTrack,
    paused: boolean,
  ): HTMLAudioElement {
    this.remove(key);
    const audio = el('audio');
    audio.autoplay = true;
    audio.dataset['consumerId'] = key;
    audio.dataset['source'] = source;
    audio.srcObject = new MediaStream([track]);
    this.#audios.set(key, { audio, source, paused });
    this.root.append(audio);
    this.#render();
    return audio;
  }

  remove(key: string): void {
    const v = this.#videos.get(key);
    if (v !== undefined) {
      v.stop();
      v.video.remove();
      this.#videos.delete(key);
    }
    const a = this.#audios.get(key);
    if (a !== undefined) {
      a.audio.srcObject = null;
      a.audio.remove();
      this.#audios.delete(key);
    }
    this.#render();
  }

  setPaused(key: string, paused: boolean): void {
    this.#videos.get(key)?.setPaused(paused);
    const a = this.#audios.get(key);
    if (a !== undefined) a.paused = paused;
    this.#render();
  }

  /** Badges for this client's own tile, where nothing may be published at all. */
  setLocalFlags(flags: { cameraOff: boolean; micOff: boolean }): void {
    this.#cameraOff = flags.cameraOff;
    this.#micOff = flags.micOff;
    this.#render();
  }

  set speaking(on: boolean) {
    this.root.classList.toggle('speaking', on);
    if (on) this.root.dataset['speaking'] = 'true';
    else delete this.root.dataset['speaking'];
  }

  audios(): HTMLAudioElement[] {
    return [...this.#audios.values()].map((a) => a.audio);
  }

  videoStates(): VideoState[] {
    return [...this.#videos].map(([consumerId, v]) => ({
      consumerId,
      source: v.source,
      paused: v.paused,
      frames: v.frames,
      width: v.video.videoWidth,
      height: v.video.videoHeight,
    }));
  }

  get audioCount(): number {
    return this.#audios.size;
  }

  destroy(): void {
    for (const key of [...this.#videos.keys(), ...this.#audios.keys()]) this.remove(key);
    this.root.remove();
  }

  #render(): void {
    const videos = [...this.#videos.values()];
    const audios = [...this.#audios.values()];
    const cameraOff = this.#cameraOff || !videos.some((v) => v.source === 'camera' && !v.paused);
    const micOff = this.#micOff || audios.some((a) => a.source === 'microphone' && a.paused);
    const badges: string[] = [];
    if (cameraOff) badges.push('camera off');
    if (micOff) badges.push('mic off');
    if (videos.some((v) => v.source === 'screen' && v.paused)) badges.push('screen paused');
    this.#badges.replaceChildren(...badges.map((b) => el('span', 'badge', b)));
    this.root.classList.toggle(
      'has-screen',
      videos.some((v) => v.source === 'screen'),
    );
    this.root.dataset['cameraOff'] = String(cameraOff);
    this.root.dataset['micOff'] = String(micOff);
  }
}
