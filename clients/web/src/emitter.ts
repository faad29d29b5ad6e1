// A tiny typed event emitter that works the same in browsers and Node.

export type Listener<T> = (ev: T) => void;

export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Call fn for each event of that name; returns a function that stops it. */
  on<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn as Listener<never>);
    return () => this.off(name, fn);
  }

  off<K extends keyof Events>(name: K, fn: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(fn as Listener<never>);
  }

  /** A listener that throws is reported on the console, never to the SDK. */
  protected emit<K extends keyof Events>(name: K, ev: Events[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<Events[K]>)(ev);
      } catch (err) {
        console.error(`parley: a '${String(name)}' listener threw`, err);
      }
    }
  }
}
