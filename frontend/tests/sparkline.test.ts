import { describe, expect, it } from "vitest";
import { sparkPoints } from "../src/lib/sparkline";

function parse(points: string): [number, number][] {
  return points ? points.split(" ").map((p) => p.split(",").map(Number) as [number, number]) : [];
}

describe("sparkPoints", () => {
  it("gives nothing for a series without a value", () => {
    expect(sparkPoints([], 60, 96, 22)).toBe("");
    expect(sparkPoints([null, null, null], 60, 96, 22)).toBe("");
  });
  it("spans the full width with one point per pixel column at most", () => {
    const vals = Array.from({ length: 300 }, (_, i) => i);
    const pts = parse(sparkPoints(vals, 60, 96, 22));
    expect(pts.length).toBe(96);
    expect(pts[0][0]).toBe(0);
    expect(pts.at(-1)![0]).toBe(95);
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
});
