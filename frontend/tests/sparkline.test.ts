import { describe, expect, it } from "vitest";
import { SPARK_UNITS, sparkMemo, sparkPoints } from "../src/lib/sparkline";

/** The points in CSS pixels. */
function parse(points: string): [number, number][] {
  if (!points) return [];
  const nums = points.split(" ").map(Number);
  expect(nums.every(Number.isInteger)).toBe(true); // whole units, printed without a fraction
  const out: [number, number][] = [];
  for (let i = 0; i < nums.length; i += 2) out.push([nums[i] / SPARK_UNITS, nums[i + 1] / SPARK_UNITS]);
  return out;
}

describe("sparkPoints", () => {
  it("gives nothing for a series without a value", () => {
    expect(sparkPoints([], 60, 96, 22)).toBe("");
    expect(sparkPoints([null, null, null], 60, 96, 22)).toBe("");
  });
  it("spans the full width with one point per pixel column at most", () => {
    const vals = Array.from({ length: 300 }, (_, i) => i);
    const pts = parse(sparkPoints(vals, 60, 96, 22));
    expect(pts.length).toBe(75); // 300 values in buckets of 4 (the fewest that fit 96 columns)
    expect(pts[0][0]).toBe(0);
    expect(pts.at(-1)![0]).toBe(95);
    for (let i = 1; i < pts.length; i++) expect(pts[i][0] - pts[i - 1][0]).toBeGreaterThanOrEqual(1);
    // Rising values: y goes from the bottom (height - 1) to the top (1).
    expect(pts[0][1]).toBeGreaterThan(20.5); // the first column holds the two lowest values
    expect(pts.at(-1)![1]).toBeCloseTo(1, 5);
  });
  it("keeps a one-tick spike visible (the column's maximum)", () => {
    const vals = Array.from({ length: 300 }, () => 1);
    vals[150] = 100;
    const pts = parse(sparkPoints(vals, 60, 96, 22));
    expect(Math.min(...pts.map((p) => p[1]))).toBeCloseTo(1, 5);
    expect(pts.filter((p) => p[1] < 10).length).toBe(1);
  });
  it("right-aligns a fresh series over at least minSlots values", () => {
    const pts = parse(sparkPoints([5, 5, 5], 60, 96, 22));
    expect(pts.length).toBe(3);
    expect(pts[0][0]).toBeGreaterThan(90);
    expect(pts.at(-1)![0]).toBe(95);
  });
  it("skips missing values and includes zero in the range", () => {
    const pts = parse(sparkPoints([4, null, 4, null], 2, 10, 12));
    expect(pts.map((p) => p[0])).toEqual([0, 6]);
    // A flat series at 4 with zero in range: the line sits at the top, not on the floor.
    for (const [, y] of pts) expect(y).toBeCloseTo(1, 5);
  });

  it("keeps the same points while the window slides inside a bucket, moving one bucket at a time", () => {
    // A ring of 300 sliding over a random series: the string changes only when a new bucket begins
    // (every 4 ticks here) or the newest bucket gets a new maximum.
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 100;
    const series = Array.from({ length: 700 }, rnd);
    let prev = "";
    let changes = 0;
    for (let end = 300; end <= 700; end++) {
      const window = series.slice(end - 300, end);
      const pts = sparkPoints(window, 60, 96, 22, end);
      const newBucket = (end - 1) % 4 === 0;
      const newMax = Math.max(...window.slice(-(((end - 1) % 4) + 1))) === window[299];
      if (pts !== prev) {
        changes++;
        if (prev) expect(newBucket || newMax).toBe(true);
      }
      prev = pts;
    }
    expect(changes).toBeLessThan(401 * 0.7); // far fewer redraws than ticks
    expect(changes).toBeGreaterThan(100); // and a new bucket every 4 ticks still moves it
  });
  it("leaves out the oldest bucket once values have slid out of it", () => {
    const vals = Array.from({ length: 300 }, () => 1);
    vals[0] = 50; // in a bucket that has lost values off the window (the window starts mid-bucket)
    const pts = parse(sparkPoints(vals, 60, 96, 22, 302));
    expect(Math.min(...pts.map((p) => p[1]))).toBeCloseTo(1, 5); // the flat line fills the height: no 50
  });
  it("takes NaN as a missing value", () => {
    expect(sparkPoints(new Float64Array([4, NaN, 4, NaN]), 2, 10, 12)).toBe(sparkPoints([4, null, 4, null], 2, 10, 12));
    expect(sparkPoints(new Float64Array([NaN, NaN]), 2, 10, 12)).toBe("");
  });
  it("with a memo, gives back the last string while nothing drawn changed, and a new one when it did", () => {
    const memo = sparkMemo();
    const series = Array.from({ length: 400 }, (_, i) => i % 7);
    series[301] = 0;
    series[302] = 50;
    const at = (end: number) => series.slice(end - 300, end);
    // Tick 301 begins a bucket of 4 (ticks 301-304 hold values 300-303); tick 302 adds a value below its
    // maximum: the same points, and the very string of the last call.
    const first = sparkPoints(at(301), 60, 96, 22, 301, memo);
    expect(first).toBe(sparkPoints(at(301), 60, 96, 22, 301));
    expect(sparkPoints(at(302), 60, 96, 22, 302, memo)).toBe(first);
    // A new maximum in the newest bucket changes them, and the memo follows.
    const spike = at(303);
    const moved = sparkPoints(spike, 60, 96, 22, 303, memo);
    expect(moved).not.toBe(first);
    expect(moved).toBe(sparkPoints(spike, 60, 96, 22, 303));
    // Another box size is drawn anew even though the values are the same.
    expect(sparkPoints(spike, 60, 80, 22, 303, memo)).toBe(sparkPoints(spike, 60, 80, 22, 303));
    // A series that empties gives "" and is remembered as such.
    const gone = new Float64Array(300).fill(NaN);
    expect(sparkPoints(gone, 60, 80, 22, 302, memo)).toBe("");
    expect(sparkPoints(gone, 60, 80, 22, 302, memo)).toBe("");
  });
});
