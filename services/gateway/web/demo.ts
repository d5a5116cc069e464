/**
 * Switchboard's demo web app (served at `/` by the gateway, bundled by build.ts): join a room
 * with a dev token (or a pasted one), publish camera and microphone, see the others, mute,
 * share the screen, leave. `window.demo` exposes its state as plain data for the browser
 * tests (Playwright's page.evaluate).
 *
 * Query parameters: room, name, autojoin=1, gateways=ws://a/api,ws://b/api, camera=0, mic=0,
 * heartbeat=<ms> (the SDK's heartbeat interval; its read deadline is 2 × that + 5 s).
 */
import { connect, type CloseInfo, type Session, type SessionState } from '@switchboard/client';
import {
  Call,
  type CallHooks,
  type ChatMessage,
  type Counters,
  type LocalTrackState,
  type TileState,
} from './call.ts';
import { StatsOverlay, type StatsSummary } from './stats.ts';
import { byId, describeError, el } from './ui.ts';

// ------------------------------------------------------------------------ the page

const form = byId('join-form', HTMLFormElement);
const roomInput = byId('room', HTMLInputElement);
const nameInput = byId('name', HTMLInputElement);
const tokenField = byId('token-field', HTMLElement);
const tokenInput = byId('token', HTMLTextAreaElement);
const joinButton = byId('join-button', HTMLButtonElement);
const formMessage = byId('form-message', HTMLElement);
const callSection = byId('call', HTMLElement);
const grid = byId('grid', HTMLElement);
const cameraButton = byId('camera-button', HTMLButtonElement);
const micButton = byId('mic-button', HTMLButtonElement);
const screenButton = byId('screen-button', HTMLButtonElement);
const soundButton = byId('sound-button', HTMLButtonElement);
const leaveButton = byId('leave-button', HTMLButtonElement);
const stateText = byId('session-state', HTMLElement);
const transportText = byId('transport-state', HTMLElement);
const flashText = byId('flash', HTMLElement);
const errorSection = byId('errors', HTMLElement);
const errorList = byId('error-list', HTMLUListElement);
const overlay = new StatsOverlay(byId('stats', HTMLElement));
const chatForm = byId('chat-form', HTMLFormElement);
const chatInput = byId('chat-input', HTMLInputElement);
const chatLog = byId('chat-log', HTMLOListElement);

const params = new URLSearchParams(location.search);
const publish = { camera: params.get('camera') !== '0', microphone: params.get('mic') !== '0' };
const heartbeat = Number(params.get('heartbeat') ?? '');
const heartbeatOption =
  Number.isInteger(heartbeat) && heartbeat >= 100 ? { heartbeatIntervalMs: heartbeat } : {};
const NO_DEV_TOKENS =
  'this gateway issues no dev tokens (GATEWAY_DEV_TOKENS is off): paste a token';

// ------------------------------------------------------------------------ app state

/** idle (never joined), joining, then the session's state; closed once it is over. */
type PageState = 'idle' | 'joining' | SessionState;

const errors: string[] = [];
const counters: Counters = { resumed: 0, rejoined: 0, restarts: 0 };
let pageState: PageState = 'idle';
let call: Call | undefined;
let joining: AbortController | undefined;
const blockedAudio = new Set<HTMLAudioElement>();
let flashTimer: ReturnType<typeof setTimeout> | undefined;

function pushError(text: string): void {
  errors.push(text);
  console.warn(`[demo] ${text}`);
  const li = el('li', undefined, text);
  li.dataset['at'] = new Date().toISOString();
  errorList.append(li);
  while (errorList.children.length > 20) errorList.firstElementChild?.remove();
  errorSection.hidden = false;
}

function setPageState(state: PageState): void {
  pageState = state;
  document.body.dataset['state'] = state;
  stateText.textContent = state;
}

function flash(text: string): void {
  flashText.textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    flashText.textContent = '';
  }, 5000);
}

function renderTransports(): void {
  const t = call?.transports;
  transportText.textContent =
    t === undefined || (t.send === null && t.recv === null)
      ? ''
      : `send ${t.send ?? '—'} · receive ${t.recv ?? '—'}`;
}

function renderControls(): void {
  const c = call;
  const toggle = (button: HTMLButtonElement, track: LocalTrackState | null, what: string): void => {
    button.disabled = track === null;
    button.textContent = track?.muted === true ? `Unmute ${what}` : `Mute ${what}`;
    button.setAttribute('aria-pressed', String(track?.muted === true));
  };
  const local = c?.local();
  toggle(cameraButton, local?.camera ?? null, 'camera');
  toggle(micButton, local?.microphone ?? null, 'microphone');
  // navigator.mediaDevices is missing where the page is not a secure context (http, not localhost).
  const devices = navigator.mediaDevices as MediaDevices | undefined;
  const sharing = (local?.screen ?? null) !== null;
  screenButton.disabled =
    c === undefined || devices === undefined || !('getDisplayMedia' in devices);
  screenButton.textContent = sharing ? 'Stop sharing' : 'Share screen';
  screenButton.setAttribute('aria-pressed', String(sharing));
  leaveButton.disabled = c === undefined && joining === undefined;
  soundButton.hidden = blockedAudio.size === 0;
}

function showCall(inCall: boolean): void {
  form.hidden = inCall;
  callSection.hidden = !inCall;
  if (!inCall) {
    grid.replaceChildren();
    chatLog.replaceChildren();
    blockedAudio.clear();
  }
  renderTransports();
  renderControls();
}

function setFormBusy(busy: boolean): void {
  for (const e of [roomInput, nameInput, tokenInput, joinButton]) e.disabled = busy;
  joinButton.textContent = busy ? 'Joining…' : 'Join';
}

// ------------------------------------------------------------------------ tokens

class NoDevTokens extends Error {
  constructor() {
    super(NO_DEV_TOKENS);
    this.name = 'NoDevTokens';
  }
}

/** A token from the gateway's POST /dev/token; NoDevTokens when it has none (404). */
async function devToken(room: string, name: string, signal: AbortSignal): Promise<string> {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, name }),
    cache: 'no-store',
    signal,
  });
  if (res.status === 404) throw new NoDevTokens();
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined; // described below, with the status
  }
  if (!res.ok) {
    const e = (body as { error?: { name?: unknown; message?: unknown } } | undefined)?.error;
    const why = e === undefined ? text.slice(0, 200) : `${String(e.name)}: ${String(e.message)}`;
    throw new Error(`POST /dev/token: HTTP ${res.status}: ${why}`);
  }
  const token = (body as { token?: unknown } | undefined)?.token;
  if (typeof token !== 'string' || token === '') {
    throw new Error('POST /dev/token: the reply has no token');
  }
  return token;
}

/** The gateways to try: ?gateways=ws://a/api,ws://b/api, else this page's own. */
function gatewayUrls(): string[] {
  const list = (params.get('gateways') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (list.length > 0) return list;
  return [`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api`];
}

// ------------------------------------------------------------------------ joining, leaving

const hooks: CallHooks = {
  error: pushError,
  flash,
  sessionState: (state) => {
    setPageState(state);
  },
  transportState: () => {
    renderTransports();
  },
  ended: (info: CloseInfo) => {
    const why = info.error === undefined ? '' : `: ${describeError(info.error)}`;
    const text = `the session ended (${info.reason})${why}`;
    pushError(text);
    call = undefined;
    formMessage.textContent = text;
    setPageState('closed');
    showCall(false);
  },
  changed: renderControls,
  audioBlocked: (audio) => {
    blockedAudio.add(audio);
    renderControls();
  },
  chat: (m: ChatMessage) => {
    const li = el('li');
    li.append(el('span', 'from', m.from), m.text);
    chatLog.append(li);
    chatLog.scrollTop = chatLog.scrollHeight;
  },
};

chatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = chatInput.value.trim();
  if (text === '') return;
  act('chat', async () => {
    requireCall().sendChat(text);
    chatInput.value = '';
  }).catch((err: unknown) => {
    console.debug('[demo] chat failed (in errors):', err);
  });
});

async function join(): Promise<void> {
  if (call !== undefined || joining !== undefined) throw new Error('already in a call');
  if (!form.reportValidity()) throw new Error('fill in the room and the name');
  const room = roomInput.value.trim();
  const name = nameInput.value.trim();
  const pasted = tokenInput.value.trim();
  const ac = new AbortController();
  joining = ac;
  formMessage.textContent = '';
  setFormBusy(true);
  setPageState('joining');
  renderControls();
  let session: Session;
  try {
    const token = pasted !== '' ? pasted : await devToken(room, name, ac.signal);
    session = await connect(gatewayUrls(), {
      room,
      token,
      ...heartbeatOption,
      // A pasted token cannot be renewed here; a dev token is renewed from the same route.
      ...(pasted !== ''
        ? {}
        : { refreshToken: async (signal: AbortSignal) => await devToken(room, name, signal) }),
      signal: ac.signal,
      // Until the call listens to the session's `error` events.
      onError: (error, context) => {
        pushError(`${context}: ${describeError(error)}`);
      },
    });
  } catch (err) {
    if (ac.signal.aborted) return; // left while joining
    if (err instanceof NoDevTokens) {
      tokenField.hidden = false;
      formMessage.textContent = NO_DEV_TOKENS;
      setPageState('idle');
      setFormBusy(false);
      tokenInput.focus();
      return;
    }
    const text = `could not join ${room}: ${describeError(err)}`;
    formMessage.textContent = text;
    setPageState('closed');
    throw new Error(text, { cause: err });
  } finally {
    if (joining === ac) joining = undefined;
    setFormBusy(false);
    renderControls();
  }
  if (ac.signal.aborted) return; // left the moment it joined: the signal closed the session
  const c = new Call(session, name, { grid, overlay, counters, hooks });
  call = c;
  setPageState(session.state);
  showCall(true);
  await c.start(publish);
}

async function leave(): Promise<void> {
  joining?.abort(new Error('left while joining'));
  const c = call;
  call = undefined;
  if (c === undefined && pageState !== 'joining') return;
  try {
    await c?.leave();
  } finally {
    setPageState('closed');
    showCall(false);
  }
}

function requireCall(): Call {
  if (call === undefined) throw new Error('not in a call');
  return call;
}

// ------------------------------------------------------------------------ actions

/** Run an action of the page; its failure goes to `errors` (and rejects the returned promise). */
async function act(label: string, f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (err) {
    pushError(`${label}: ${describeError(err)}`);
    throw err;
  } finally {
    renderControls();
  }
}

/** A button's action: the failure is in `errors` already, nothing more to do with it. */
function onClick(button: HTMLButtonElement, label: string, f: () => Promise<void>): void {
  button.addEventListener('click', () => {
    button.disabled = true;
    act(label, f).catch((err: unknown) => {
      console.debug(`[demo] ${label} failed (in errors):`, err);
    });
  });
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  act('join', join).catch((err: unknown) => {
    console.debug('[demo] join failed (in errors):', err);
  });
});
onClick(cameraButton, 'camera', async () => {
  const c = requireCall();
  await c.setMuted('camera', c.camera?.muted !== true);
});
onClick(micButton, 'microphone', async () => {
  const c = requireCall();
  await c.setMuted('microphone', c.microphone?.muted !== true);
});
onClick(screenButton, 'screen share', async () => {
  const c = requireCall();
  await c.shareScreen(c.screen === undefined);
});
onClick(leaveButton, 'leave', leave);
onClick(soundButton, 'enable sound', async () => {
  const audios = [...blockedAudio];
  blockedAudio.clear();
  await Promise.all(
    audios.map(async (a) => {
      await a.play();
    }),
  );
});

window.addEventListener('error', (ev) => {
  pushError(`uncaught: ${ev.error instanceof Error ? describeError(ev.error) : ev.message}`);
});
window.addEventListener('unhandledrejection', (ev) => {
  pushError(`unhandled rejection: ${describeError(ev.reason)}`);
});

// ------------------------------------------------------------------------ the test hook

export interface DemoState {
  sessionState: PageState;
  socketId: string | null;
  userId: string | null;
  name: string | null;
  room: string | null;
  resumed: number;
  rejoined: number;
  restarts: number;
  errors: string[];
  tiles: TileState[];
  local: Record<'camera' | 'microphone' | 'screen', LocalTrackState | null>;
  transports: { send: string | null; recv: string | null };
  activeSpeaker: string | null;
  stats: StatsSummary | null;
  messages: ChatMessage[];
  /** The member list as shown: "you (name)" first, then the others' names. */
  members: string[];
}

const demo = {
  state(): DemoState {
    const c = call;
    let socketId: string | null = null;
    if (c !== undefined && c.session.state !== 'closed') socketId = c.session.socketId;
    return {
      sessionState: c === undefined ? pageState : c.session.state,
      socketId,
      userId: c?.name ?? null,
      name: c?.name ?? null,
      room: c?.session.roomId ?? null,
      ...counters,
      errors: [...errors],
      tiles: c?.tiles() ?? [],
      local: c?.local() ?? { camera: null, microphone: null, screen: null },
      transports: c === undefined ? { send: null, recv: null } : { ...c.transports },
      activeSpeaker: c?.activeSpeaker ?? null,
      stats: c?.stats ?? null,
      messages: c === undefined ? [] : [...c.messages],
      members: c?.members() ?? [],
    };
  },
  async join(): Promise<void> {
    await act('join', join);
  },
  async muteCamera(muted: boolean): Promise<void> {
    await act('camera', async () => {
      await requireCall().setMuted('camera', muted);
    });
  },
  async muteMicrophone(muted: boolean): Promise<void> {
    await act('microphone', async () => {
      await requireCall().setMuted('microphone', muted);
    });
  },
  async shareScreen(on: boolean): Promise<void> {
    await act('screen share', async () => {
      await requireCall().shareScreen(on);
    });
  },
  async leave(): Promise<void> {
    await act('leave', leave);
  },
  /** Receive `userId`'s camera at another simulcast layer (0 the smallest). */
  async setVideoQuality(userId: string, spatialLayer: number): Promise<void> {
    await act('video quality', async () => {
      await requireCall().setVideoQuality(userId, spatialLayer);
    });
  },
  /** Send a chat message on the data channel (once it is open). */
  async sendChat(text: string): Promise<void> {
    await act('chat', async () => {
      requireCall().sendChat(text);
    });
  },
};
Object.assign(window, { demo });
/** window.demo, as the end-to-end tests drive it. */
export type DemoApi = typeof demo;

// ------------------------------------------------------------------------ start

roomInput.value = params.get('room') ?? 'demo';
nameInput.value = params.get('name') ?? `guest-${String(Math.floor(Math.random() * 9000) + 1000)}`;
setPageState('idle');
showCall(false);
if (params.get('autojoin') === '1') {
  act('join', join).catch((err: unknown) => {
    console.debug('[demo] join failed (in errors):', err);
  });
}
