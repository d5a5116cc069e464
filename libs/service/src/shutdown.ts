/**
 * The order of a service's shutdown steps. A step may name the steps it must run after
 * (`after`: they stop first, e.g. the database after everything that uses it); otherwise the
 * last registered runs first, as with a stack of deferred clean-ups. The order is declared
 * where a step is registered, not kept in comments.
 */
export interface ShutdownStep {
  name: string;
  step: () => Promise<void>;
  /** Steps that run before this one (by name). */
  after: readonly string[];
}

/**
 * The steps in the order they run: each after every step it names (a name no step has is a
 * mistake, reported in `problems` and ignored), otherwise the later registered first. A
 * cycle is reported and broken in registration's reverse order.
 */
export function shutdownOrder(steps: readonly ShutdownStep[]): {
  order: ShutdownStep[];
  problems: string[];
} {
  const problems: string[] = [];
  const names = new Set(steps.map((s) => s.name));
  for (const s of steps)
    for (const a of s.after)
      if (!names.has(a))
        problems.push(`shutdown step "${s.name}" is after "${a}", which no step is`);
  const left = [...steps].reverse();
  const done = new Set<string>();
  const order: ShutdownStep[] = [];
  while (left.length > 0) {
    let i = left.findIndex((s) => s.after.every((a) => done.has(a) || !names.has(a)));
    if (i < 0) {
      problems.push(
        `shutdown steps ${left.map((s) => `"${s.name}"`).join(', ')} wait for each other`,
      );
      i = 0;
    }
    const [next] = left.splice(i, 1);
    if (next === undefined) break;
    order.push(next);
    done.add(next.name);
  }
  return { order, problems };
}
