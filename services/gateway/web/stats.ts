/** The stats overlay: this client's media figures (RoomMedia.stats()), once a second. */
import type { ClientStats } from '@switchboard/protocol';
import { el } from './ui.ts';

export interface StatsSummary {
  sendKbps: number;
  recvKbps: number;
  packetsLost: number;
  /** Round trip of the send transport's ICE pair; null until one is known. */
  rttMs: number | null;
}

export function summarize(s: ClientStats): StatsSummary {
  return {
    sendKbps: Math.round(s.sendBitrate / 1000),
    recvKbps: Math.round(s.recvBitrate / 1000),
    packetsLost: s.packetsLost,
    rttMs: s.rttMs ?? null,
  };
}

export class StatsOverlay {
  readonly #root: HTMLElement;
  readonly #values = new Map<keyof StatsSummary, HTMLElement>();

  constructor(root: HTMLElement) {
    this.#root = root;
    const dl = el('dl');
    const rows: [keyof StatsSummary, string][] = [
      ['sendKbps', 'send'],
      ['recvKbps', 'receive'],
      ['packetsLost', 'packets lost'],
      ['rttMs', 'RTT'],
    ];
    for (const [key, label] of rows) {
      const dd = el('dd', undefined, '—');
      dd.dataset['stat'] = key;
      this.#values.set(key, dd);
      dl.append(el('dt', undefined, label), dd);
    }
    root.replaceChildren(dl);
  }

  show(s: StatsSummary): void {
    this.#set('sendKbps', `${s.sendKbps} kbit/s`);
    this.#set('recvKbps', `${s.recvKbps} kbit/s`);
    this.#set('packetsLost', String(s.packetsLost));
    this.#set('rttMs', s.rttMs === null ? '—' : `${Math.round(s.rttMs)} ms`);
    this.#root.hidden = false;
  }

  clear(): void {
    for (const dd of this.#values.values()) dd.textContent = '—';
    this.#root.hidden = true;
  }

  #set(key: keyof StatsSummary, text: string): void {
    const dd = this.#values.get(key);
    if (dd !== undefined) dd.textContent = text;
  }
}
