/**
 * Typed listeners, for the peer adapters. A listener that throws does not stop the others;
 * its error goes to the sink (nothing is lost, nothing escapes).
 */
export class Listeners<Events extends object> {
  readonly #sets = new Map<keyof Events, Set<(value: never) => void>>();
  readonly #onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void) {
    this.#onError = onError;
  }

  /** Listen to `event`; returns the function that stops listening. */
  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): () => void {
    let set = this.#sets.get(event);
    if (set === undefined) {
      set = new Set();
      this.#sets.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const listener of [...(this.#sets.get(event) ?? [])]) {
      try {
        (listener as (value: Events[K]) => void)(value);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  clear(): void {
    this.#sets.clear();
  }
}
