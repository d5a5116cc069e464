import { describe, expect, it } from 'vitest';
import { DEFAULT_LADDER } from '@switchboard/protocol';
import { UserMediaLadder } from '../src/signaling/ladder.ts';

describe('UserMediaLadder', () => {
  const ladder = new UserMediaLadder([
    { maxSize: 4, width: 960, height: 540, frameRate: 30 },
    { maxSize: 2, width: 1280, height: 720, frameRate: 30 },
    { maxSize: 10, width: 320, height: 180, frameRate: 15 },
  ]);

  it('picks the first step whose maxSize covers the room (steps sorted)', () => {
    expect(ladder.configuration(1).video.width.max).toBe(1280);
    expect(ladder.configuration(2).video.width.max).toBe(1280);
    expect(ladder.configuration(3).video.width.max).toBe(960);
    expect(ladder.configuration(10).video.width.max).toBe(320);
    // Above the last step, the last step applies.
    expect(ladder.configuration(500)).toEqual({
      audio: true,
      video: { width: { max: 320 }, height: { max: 180 }, frameRate: { max: 15 } },
    });
  });

  it('reports a change only when the size crosses a step', () => {
    expect(ladder.change(1, 2)).toBeUndefined();
    expect(ladder.change(2, 3)?.video.width.max).toBe(960);
    expect(ladder.change(3, 2)?.video.width.max).toBe(1280);
    expect(ladder.change(11, 12)).toBeUndefined();
    // An empty room has nobody to tell.
    expect(ladder.change(1, 0)).toBeUndefined();
  });

  it('accepts the default ladder and refuses an empty one', () => {
    expect(new UserMediaLadder(DEFAULT_LADDER).configuration(1).video.width.max).toBe(1280);
    expect(() => new UserMediaLadder([])).toThrow();
  });
});
