/**
 * The median of the last `capacity` values of a per-tick figure. `add` takes the tick's own object with its
 * value, so that a caller evaluated twice for one tick (a reactive derivation re-run) counts it once.
 */
export class RecentMedian {
  private readonly values: number[] = [];
  private last: unknown = undefined;
  private median = NaN;

  constructor(private readonly capacity: number) {}

  /** How many values the median is over now. */
  get size(): number {
    return this.values.length;
  }

  add(tick: unknown, value: number): number {
    if (tick === this.last) return this.median;
    this.last = tick;
    this.values.push(value);
    if (this.values.length > this.capacity) this.values.shift();
    const sorted = [...this.values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    this.median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return this.median;
  }
}
