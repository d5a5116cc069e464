/**
 * A peer keeps what its transports make only while they are open (src/peer.ts): a transport
 * that closes while the worker is making a producer or consumer has already closed its
 * children, so the new one would never hear its own close and stay published forever. The
 * transport, producer and consumer here are fakes (hand-written stand-ins for mediasoup's,
 * with only what MediaPeer touches); the route and the worker pool are fakes too.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { types } from 'mediasoup';
import { ProtocolError } from '@switchboard/protocol';
import { MediaPeer } from '../src/peer.ts';
import type { Route } from '../src/route.ts';
import type { WorkerSlot } from '../src/workers.ts';

/** A fake producer or consumer: closing it is recorded. */
class FakeChild {
  static #n = 0;
  readonly id = `child-${String(FakeChild.#n++)}`;
  readonly observer = new EventEmitter();
  readonly producerId = 'p';
  closed = false;
  close(): void {
    this.closed = true;
    this.observer.emit('close');
  }
}

/** A fake transport that makes children, closing itself first when told to. */
class FakeTransport {
  readonly id = 'transport-1';
  readonly observer = new EventEmitter();
  closed = false;
  closeWhileMaking = false;
  readonly made: FakeChild[] = [];

  async #make(): Promise<FakeChild> {
    await Promise.resolve();
    if (this.closeWhileMaking) this.closed = true;
    const child = new FakeChild();
    this.made.push(child);
    return child;
  }
  produce = (): Promise<FakeChild> => this.#make();
  consume = (): Promise<FakeChild> => this.#make();
}

function fakePeer(transport: FakeTransport): MediaPeer {
  const route = {
    router: {
      createWebRtcTransport: () => Promise.resolve(transport),
    },
    slot: {} as WorkerSlot,
    speaker: new EventEmitter(),
  } as unknown as Route;
  return new MediaPeer('socket-1', 'user-1', route, { track: () => undefined });
}

const options = { kind: 'video', rtpParameters: {}, source: 'camera' } as const;

describe('MediaPeer keeps only what an open transport made', () => {
  it('a producer made while its transport closed is closed, refused and not kept', async () => {
    const transport = new FakeTransport();
    const peer = fakePeer(transport);
    const announced: string[] = [];
    peer.on('newproducer', (p) => announced.push(p.id));
    const t = transport as unknown as types.WebRtcTransport;

    const kept = await peer.produce(t, options as unknown as Parameters<MediaPeer['produce']>[1]);
    expect(peer.producers.has(kept.id)).toBe(true);

    transport.closeWhileMaking = true;
    const refused = peer.produce(t, options as unknown as Parameters<MediaPeer['produce']>[1]);
    await expect(refused).rejects.toBeInstanceOf(ProtocolError);
    await expect(refused).rejects.toMatchObject({ errorName: 'MEDIA_NOT_FOUND' });
    const late = transport.made.at(-1);
    expect(late?.closed).toBe(true);
    expect(peer.producers.has(late?.id ?? '')).toBe(false);
    expect(announced).toEqual([kept.id]);
  });

  it('so is a consumer', async () => {
    const transport = new FakeTransport();
    const peer = fakePeer(transport);
    await peer.createWebRtcTransport(
      'recv',
      {},
      {
        sctp: false,
        initialOutgoingBitrate: 1,
      },
    );
    transport.closeWhileMaking = true;
    await expect(peer.consume({} as types.ConsumerOptions)).rejects.toMatchObject({
      errorName: 'MEDIA_NOT_FOUND',
    });
    expect(transport.made.at(-1)?.closed).toBe(true);
    expect(peer.consumes('p')).toBe(false);
  });
});
