/** The order of shutdown steps: declared dependencies first, else the last registered first. */
import { describe, expect, it } from 'vitest';
import { shutdownOrder, type ShutdownStep } from '../src/shutdown.ts';

const step = (name: string, after: string[] = []): ShutdownStep => ({
  name,
  after,
  step: async () => {
    await Promise.resolve();
  },
});
const names = (steps: readonly ShutdownStep[]): string[] => steps.map((s) => s.name);

describe('shutdown order', () => {
  it('runs the last registered first when nothing is declared', () => {
    const { order, problems } = shutdownOrder([step('a'), step('b'), step('c')]);
    expect(names(order)).toEqual(['c', 'b', 'a']);
    expect(problems).toEqual([]);
  });

  it('runs a step after the steps it names, wherever they were registered', () => {
    // The database registered first and declared last; the outbox after signaling.
    const { order, problems } = shutdownOrder([
      step('postgres', ['signaling', 'outbox']),
      step('outbox', ['signaling']),
      step('signaling'),
      step('metrics'),
    ]);
    expect(names(order)).toEqual(['metrics', 'signaling', 'outbox', 'postgres']);
    expect(problems).toEqual([]);
  });

  it('reports a name no step has, and a cycle, and still runs every step once', () => {
    const unknown = shutdownOrder([step('a', ['nope']), step('b')]);
    expect(names(unknown.order)).toEqual(['b', 'a']);
    expect(unknown.problems).toEqual(['shutdown step "a" is after "nope", which no step is']);

    const cycle = shutdownOrder([step('a', ['b']), step('b', ['a']), step('c')]);
    expect(names(cycle.order).sort()).toEqual(['a', 'b', 'c']);
    expect(names(cycle.order)[0]).toBe('c');
    expect(cycle.problems).toHaveLength(1);
  });
});
