/**
 * The getUserMedia constraints a room asks its members to use, by room size: a ladder of
 * steps (USER_MEDIA_LADDER), each applying up to its `maxSize` members. When a join or a
 * leave moves the room onto another step, every member gets eventUserMediaConfiguration.
 */
import type { LadderStep, UserMediaConfiguration } from '@switchboard/protocol';

export class UserMediaLadder {
  readonly #steps: readonly LadderStep[];

  constructor(steps: readonly LadderStep[]) {
    if (steps.length === 0) throw new Error('the ladder needs at least one step');
    this.#steps = [...steps].sort((a, b) => a.maxSize - b.maxSize);
  }

  /** Index of the step that applies to a room of `size` members. */
  step(size: number): number {
    const i = this.#steps.findIndex((s) => size <= s.maxSize);
    return i === -1 ? this.#steps.length - 1 : i;
  }

  /** The constraints for a room of `size` members. */
  configuration(size: number): UserMediaConfiguration {
    const s = this.#steps[this.step(size)];
    if (s === undefined) throw new Error('unreachable: empty ladder');
    return {
      audio: true,
      video: {
        width: { max: s.width },
        height: { max: s.height },
        frameRate: { max: s.frameRate },
      },
    };
  }

  /** The new constraints when a room going from `before` to `after` members changes step. */
  change(before: number, after: number): UserMediaConfiguration | undefined {
    if (after === 0 || this.step(before) === this.step(after)) return undefined;
    return this.configuration(after);
  }
}
