/**
 * Lean ticks: the daemon sends a collector's sticky keys (the perf events that cannot be counted, the top
 * processes' command lines) only as far as they changed. A part says `"kept": {key: seq}` for a value left
 * out because it is the same as since tick `seq`, and `"patch": {key: {base, drop}}` for an object of which
 * the tick carries only the entries added or changed since tick `base` (the one before), `drop` naming
 * those that went. This rebuilds the whole values from the last ones held, so that everything downstream
 * sees whole ticks.
 */

interface Part {
  data?: Record<string, unknown>;
  kept?: Record<string, number>;
  patch?: Record<string, { base: number; drop?: string[] }>;
}

interface Held {
  value: unknown;
  /** The last tick whose value this is, or -1 when it may be out of date (a tick was missed). */
  seq: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export class KeptValues {
  private sticky = new Map<string, readonly string[]>();
  private held = new Map<string, Held>();

  /** A new connection: the sticky keys its hello announced, and nothing held yet. */
  reset(sticky: Record<string, readonly string[]> | undefined): void {
    this.sticky = new Map(Object.entries(sticky ?? {}));
    this.held.clear();
  }

  /**
   * Complete the sticky keys of one tick in place, and hold the values for the next. Returns false when a
   * value could not be brought up to date (a tick it depends on was missed): the tick then shows the
   * newest value held, and the caller should ask the daemon for a whole tick.
   */
  fill(tick: { seq?: number; collectors?: Record<string, Part> }): boolean {
    let whole = true;
    const seq = typeof tick.seq === "number" ? tick.seq : 0;
    for (const [name, keys] of this.sticky) {
      const part = tick.collectors?.[name];
      const data = part?.data;
      if (!data) continue;
      for (const key of keys) {
        const slot = `${name}\u0000${key}`;
        const had = this.held.get(slot);
        const since = part.kept?.[key];
        const patch = part.patch?.[key];
        if (since !== undefined) {
          if (had) data[key] = had.value;
          const fresh = had !== undefined && had.seq >= since;
          if (had) had.seq = fresh ? seq : -1;
          whole &&= fresh;
        } else if (patch) {
          const base = had && isObject(had.value) ? had.value : {};
          const next: Record<string, unknown> = { ...base };
          for (const gone of patch.drop ?? []) delete next[gone];
          if (isObject(data[key])) Object.assign(next, data[key]);
          data[key] = next;
          const fresh = had !== undefined && had.seq === patch.base;
          this.held.set(slot, { value: next, seq: fresh ? seq : -1 });
          whole &&= fresh;
        } else if (key in data) {
          this.held.set(slot, { value: data[key], seq });
        } else {
          this.held.delete(slot); // the collector stopped reporting it
        }
      }
    }
    return whole;
  }
}
