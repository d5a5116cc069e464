/**
 * room.live's parts: a room's members' JSON array cut at member boundaries, each part under
 * its budget, nothing lost or reordered — also with userIds that look like the boundary.
 */
import { describe, expect, it } from 'vitest';
import { splitMembers } from '../src/signaling/live.ts';

const member = (i: number, userId: string): { socketId: string; userId: string } => ({
  socketId: i.toString(16).padStart(32, '0'),
  userId,
});

describe('splitMembers', () => {
  it('a room that fits is one part, unchanged', () => {
    const array = JSON.stringify([member(1, 'a'), member(2, 'b')]);
    expect(splitMembers(array, 10_000)).toEqual([array]);
    expect(splitMembers('[]', 100)).toEqual(['[]']);
  });

  it('cuts at member boundaries, under the budget, in order, whatever the userIds hold', () => {
    const tricky = ['},{"socketId":"', '"}]', 'é中\u2028', '\\', 'plain'];
    const members = Array.from({ length: 500 }, (_, i) =>
      member(i, `${tricky[i % tricky.length] ?? ''}-${String(i)}`),
    );
    const array = JSON.stringify(members);
    const parts = splitMembers(array, 2048);
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(2048);
    const back = parts.flatMap((p) => JSON.parse(p) as unknown[]);
    expect(back).toEqual(members);
  });
});
