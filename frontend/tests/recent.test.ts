import { describe, expect, it } from "vitest";
import { RecentMedian } from "../src/lib/recent";

describe("RecentMedian", () => {
  it("is the median of the last values, one per tick however often it is asked", () => {
    const m = new RecentMedian(3);
    const t1 = {};
    expect(m.add(t1, 5)).toBe(5);
    expect(m.add(t1, 5)).toBe(5); // the same tick again: not counted twice
    expect(m.size).toBe(1);
    expect(m.add({}, 1)).toBe(3); // even count: the mean of the middle two
    expect(m.add({}, 9)).toBe(5);
    expect(m.add({}, 100)).toBe(9); // 5 has left the window: 1, 9, 100
    expect(m.size).toBe(3);
  });

  it("leaves out a one-tick outlier", () => {
    const m = new RecentMedian(10);
    let shown = 0;
    for (const v of [0.5, 0.6, 0.5, 0.5, 40, 0.6, 0.5]) shown = m.add({}, v);
    expect(shown).toBe(0.5);
  });
});
