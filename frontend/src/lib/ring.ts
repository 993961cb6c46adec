/**
 * Fixed-size ring buffers for the live view. The dashboard keeps the last few minutes of every series in
 * memory and hands uPlot plain arrays; a ring never grows, so memory stays flat however long the page runs.
 */

/** A ring of numbers where a missing value (null) is stored as NaN and read back as null. */
export class Ring {
  private buf: Float64Array;
  private head = 0; // next write position
  private size = 0;
  private count = 0; // values ever pushed (since the last clear)

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    this.buf = new Float64Array(capacity);
  }

  get capacity(): number {
    return this.buf.length;
  }

  get length(): number {
    return this.size;
  }

  /** How many values were ever pushed (since the last clear): the running index one past the newest. */
  get pushed(): number {
    return this.count;
  }

  push(v: number | null | undefined): void {
    this.buf[this.head] = typeof v === "number" && Number.isFinite(v) ? v : NaN;
    this.head = (this.head + 1) % this.buf.length;
    if (this.size < this.buf.length) this.size++;
    this.count++;
  }

  /** The i-th value from the oldest (0) to the newest (length - 1). */
  at(i: number): number | null {
    if (i < 0) i += this.size;
    if (i < 0 || i >= this.size) return null;
    const v = this.buf[(this.head - this.size + i + this.buf.length) % this.buf.length];
    return Number.isNaN(v) ? null : v;
  }

  last(): number | null {
    return this.at(this.size - 1);
  }

  /** Oldest-first values; `out` is reused when given, so a chart can refresh without allocating. */
  toArray(out: (number | null)[] = []): (number | null)[] {
    out.length = this.size;
    const cap = this.buf.length;
    let j = (this.head - this.size + cap) % cap;
    for (let i = 0; i < this.size; i++) {
      const v = this.buf[j];
      out[i] = Number.isNaN(v) ? null : v;
      j = j + 1 === cap ? 0 : j + 1;
    }
    return out;
  }

  /**
   * Oldest-first values as a Float64Array, a missing value as NaN. `out` is refilled and returned when it
   * has the ring's length, otherwise a new array is. Unlike `toArray`, nothing is boxed: a plain array
   * that holds nulls stores each number as a heap object, and refilling one per series and tick made a
   * garbage collection every few ticks.
   */
  values(out?: Float64Array): Float64Array {
    const arr = out && out.length === this.size ? out : new Float64Array(this.size);
    const cap = this.buf.length;
    for (let i = 0, j = (this.head - this.size + cap) % cap; i < this.size; i++) {
      arr[i] = this.buf[j];
      j = j + 1 === cap ? 0 : j + 1;
    }
    return arr;
  }

  /** True when every stored value is missing (the series has vanished from the window). */
  empty(): boolean {
    for (let i = 0; i < this.size; i++) if (!Number.isNaN(this.buf[i])) return false;
    return true;
  }

  /** Min and max of the non-missing values, or null when there are none. */
  extent(): [number, number] | null {
    let lo = Infinity;
    let hi = -Infinity;
    const cap = this.buf.length;
    for (let i = 0, j = (this.head - this.size + cap) % cap; i < this.size; i++, j = (j + 1) % cap) {
      const v = this.buf[j];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return lo === Infinity ? null : [lo, hi];
  }

  /** Mean of the non-missing values, or null when there are none. */
  mean(): number | null {
    let sum = 0;
    let n = 0;
    const cap = this.buf.length;
    for (let i = 0, j = (this.head - this.size + cap) % cap; i < this.size; i++, j = j + 1 === cap ? 0 : j + 1) {
      const v = this.buf[j];
      if (!Number.isNaN(v)) {
        sum += v;
        n++;
      }
    }
    return n ? sum / n : null;
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
    this.count = 0;
  }

  /** A new capacity that keeps the newest values (used when the sampling interval changes). */
  resize(capacity: number): void {
    const values = this.toArray();
    this.buf = new Float64Array(capacity);
    this.head = 0;
    this.size = 0;
    this.count = 0;
    for (const v of values.slice(-capacity)) this.push(v);
  }
}

/**
 * A shared time axis and many aligned series. Every series has exactly one value per tick (null where it
 * had none), so `times` and each series can be handed to uPlot together. A series that appears mid-window
 * is back-filled with nulls; one whose window holds nothing but nulls is dropped (a process that exited).
 */
export class Timeline {
  readonly times: Ring;
  readonly series = new Map<string, Ring>();
  /** Changes whenever a series is added or dropped (so indexes over the keys know to rebuild). */
  keysVersion = 0;
  private pushes = 0;

  constructor(readonly capacity: number) {
    this.times = new Ring(capacity);
  }

  get length(): number {
    return this.times.length;
  }

  /** Append one tick. Timestamps are Unix seconds; a tick not newer than the last one is ignored. */
  push(t: number, values: Map<string, number | null> | Record<string, number | null>): boolean {
    const lastT = this.times.last();
    if (lastT !== null && t <= lastT) return false;
    const entries = values instanceof Map ? values : new Map(Object.entries(values));
    const before = this.times.length;
    this.times.push(t);
    // forEach, not for-of: a for-of over a map makes an entry pair per key, hundreds per tick.
    entries.forEach((v, key) => {
      let ring = this.series.get(key);
      if (!ring) {
        ring = new Ring(this.capacity);
        for (let i = 0; i < before && i < this.capacity - 1; i++) ring.push(null);
        this.series.set(key, ring);
        this.keysVersion++;
      }
      ring.push(v);
    });
    this.series.forEach((ring, key) => {
      if (!entries.has(key)) ring.push(null);
    });
    if (++this.pushes % 32 === 0) this.prune();
    return true;
  }

  private prune(): void {
    for (const [key, ring] of this.series) {
      if (ring.empty()) {
        this.series.delete(key);
        this.keysVersion++;
      }
    }
  }

  get(key: string): Ring | undefined {
    return this.series.get(key);
  }

  latest(key: string): number | null {
    return this.series.get(key)?.last() ?? null;
  }

  resize(capacity: number): Timeline {
    const next = new Timeline(capacity);
    const n = this.times.length;
    const keys = [...this.series.keys()];
    for (let i = Math.max(0, n - capacity); i < n; i++) {
      const row = new Map<string, number | null>();
      for (const k of keys) row.set(k, this.series.get(k)!.at(i));
      next.push(this.times.at(i)!, row);
    }
    return next;
  }

  clear(): void {
    this.times.clear();
    this.series.clear();
    this.keysVersion++;
  }
}
