import { describe, expect, it } from "vitest";
import { drawLines, traceLine, type Geometry, type LineContext, type LinePlot } from "../src/lib/paths";

type Op = [string, number?, number?];

class Recorder {
  ops: Op[] = [];
  moveTo(x: number, y: number): void {
    this.ops.push(["M", x, y]);
  }
  lineTo(x: number, y: number): void {
    this.ops.push(["L", x, y]);
  }
  closePath(): void {
    this.ops.push(["Z"]);
  }
}

// A 100 × 50 plot area at (10, 5): x 0..100 maps to 10..110, y 0..10 maps to 55..5.
const G: Geometry = { left: 10, top: 5, width: 100, height: 50, xMin: 0, xMax: 100, yMin: 0, yMax: 10 };

describe("traceLine", () => {
  it("maps values to integer device pixels, y growing downwards", () => {
    const r = new Recorder();
    const n = traceLine([0, 50, 100], [0, 5, 10], 0, 2, G, r);
    expect(n).toBe(3);
    expect(r.ops).toEqual([
      ["M", 10, 55],
      ["L", 60, 30],
      ["L", 110, 5],
    ]);
  });

  it("lifts the pen at a missing value and starts again after it", () => {
    const r = new Recorder();
    traceLine([0, 10, 20, 30, 40], [1, 2, null, 4, 5], 0, 4, G, r);
    expect(r.ops.map((o) => o[0])).toEqual(["M", "L", "M", "L"]);
    expect(r.ops[2]).toEqual(["M", 40, 35]);
  });

  it("treats NaN and undefined as missing, not as zero", () => {
    const r = new Recorder();
    const n = traceLine([0, 10, 20], [NaN, undefined, 3], 0, 2, G, r);
    expect(n).toBe(1);
    expect(r.ops).toEqual([["M", 30, 40]]);
  });

  it("draws several points in one pixel column as one vertical stroke over their range", () => {
    // 1000 points across 100 pixels: a spike in the middle of a flat line must survive.
    const xs = Array.from({ length: 1001 }, (_, i) => i / 10);
    const ys = xs.map(() => 1);
    ys[503] = 9;
    const r = new Recorder();
    traceLine(xs, ys, 0, 1000, G, r);
    const ops = r.ops;
    expect(ops.length).toBeLessThan(150); // about one segment per column, not 1001
    const top = Math.min(...ops.map((o) => o[2] ?? Infinity));
    expect(top).toBe(Math.round(55 - 9 * 5)); // the spike's height is drawn
    // Every x is an integer column inside the plot area.
    for (const o of ops) {
      expect(Number.isInteger(o[1])).toBe(true);
      expect(o[1]!).toBeGreaterThanOrEqual(10);
      expect(o[1]!).toBeLessThanOrEqual(110);
    }
  });

  it("closes one fill shape per unbroken run, down to the fill value", () => {
    const s = new Recorder();
    const f = new Recorder();
    traceLine([0, 10, 20, 30, 40], [2, 4, null, 6, 8], 0, 4, G, s, f, 0);
    expect(f.ops).toEqual([
      ["M", 10, 55],
      ["L", 10, 45],
      ["L", 20, 35],
      ["L", 20, 55],
      ["L", 10, 55],
      ["Z"],
      ["M", 40, 55],
      ["L", 40, 25],
      ["L", 50, 15],
      ["L", 50, 55],
      ["L", 40, 55],
      ["Z"],
    ]);
  });

  it("draws nothing for an empty or all-missing range, and survives a zero-height scale", () => {
    const r = new Recorder();
    expect(traceLine([], [], 0, -1, G, r)).toBe(0);
    expect(traceLine([0, 1], [null, null], 0, 1, G, r)).toBe(0);
    expect(r.ops).toEqual([]);
    const flat = { ...G, yMin: 3, yMax: 3 };
    traceLine([0, 100], [3, 3], 0, 1, flat, r);
    expect(r.ops).toEqual([
      ["M", 10, 55],
      ["L", 110, 55],
    ]);
  });

  it("draws a level stretch as one segment, and the same shape as point by point", () => {
    // 0 0 0 0 3 3 0 0 with a spike column in the middle of a level stretch.
    const xs = [0, 10, 20, 30, 40, 50, 60, 70, 70.2, 70.4, 80, 90];
    const ys = [0, 0, 0, 0, 3, 3, 0, 0, 6, 0, 0, 0];
    const r = new Recorder();
    traceLine(xs, ys, 0, xs.length - 1, G, r);
    expect(r.ops).toEqual([
      ["M", 10, 55],
      ["L", 40, 55], // four level columns: one segment
      ["L", 50, 40],
      ["L", 60, 40],
      ["L", 70, 55],
      ["L", 80, 55], // level up to the spike's column, then the spike drawn in it
      ["L", 80, 25],
      ["L", 80, 55],
      ["L", 80, 55],
      ["L", 100, 55], // and level again to the end, in one segment
    ]);
    // A flat series of 300 points: two vertices, with its fill closed the same way.
    const flat = new Recorder();
    const area = new Recorder();
    const many = Array.from({ length: 300 }, (_, i) => i / 3);
    traceLine(many, many.map(() => 2), 0, 299, G, flat, area);
    expect(flat.ops).toEqual([
      ["M", 10, 45],
      ["L", 110, 45],
    ]);
    expect(area.ops).toEqual([["M", 10, 55], ["L", 10, 45], ["L", 110, 45], ["L", 110, 55], ["L", 10, 55], ["Z"]]);
  });
});

/** A canvas context that records what is drawn (where it lands on the canvas), and with which style. */
class FakeContext extends Recorder implements LineContext {
  strokeStyle: string | CanvasGradient | CanvasPattern = "";
  fillStyle: string | CanvasGradient | CanvasPattern = "";
  lineWidth = 0;
  lineJoin: CanvasLineJoin = "miter";
  lineCap: CanvasLineCap = "butt";
  calls: string[] = [];
  private shift: [number, number] = [0, 0];
  private saved: [number, number][] = [];
  save(): void {
    this.calls.push("save");
    this.saved.push(this.shift);
  }
  restore(): void {
    this.calls.push("restore");
    this.shift = this.saved.pop() ?? [0, 0];
  }
  translate(x: number, y: number): void {
    this.calls.push(`translate ${x} ${y}`);
    this.shift = [this.shift[0] + x, this.shift[1] + y];
  }
  moveTo(x: number, y: number): void {
    super.moveTo(x + this.shift[0], y + this.shift[1]);
  }
  lineTo(x: number, y: number): void {
    super.lineTo(x + this.shift[0], y + this.shift[1]);
  }
  beginPath(): void {
    this.calls.push("begin");
    this.ops = [];
  }
  rect(x: number, y: number, w: number, h: number): void {
    this.calls.push(`rect ${x} ${y} ${w} ${h}`);
  }
  clip(): void {
    this.calls.push("clip");
  }
  setLineDash(d: number[]): void {
    this.calls.push(`dash ${d.join(",")}`);
  }
  stroke(): void {
    this.calls.push(`stroke ${String(this.strokeStyle)} ${this.lineWidth} ${JSON.stringify(this.ops[0])}`);
  }
  fill(): void {
    this.calls.push(`fill ${String(this.fillStyle)} ${this.ops.length}`);
  }
}

function plot(ctx: FakeContext, shown: boolean[] = [true, true]): LinePlot {
  return {
    ctx,
    bbox: { left: 10, top: 5, width: 100, height: 50 },
    data: [
      [0, 50, 100],
      [0, 5, 10],
      [10, 5, 0],
    ],
    series: [{}, ...shown.map((show) => ({ show }))],
    scales: { x: { min: 0, max: 100 }, y: { min: 0, max: 10 } },
  };
}

describe("drawLines", () => {
  it("clips once for all lines, fills under a line before stroking it, and restores the context", () => {
    const ctx = new FakeContext();
    const n = drawLines(plot(ctx), [
      { stroke: "red", width: 1, fill: "pink" },
      { stroke: "blue", width: 2, dash: [4, 2] },
    ]);
    expect(n).toBe(2);
    expect(ctx.calls).toEqual([
      "save",
      "begin",
      "rect 10 5 100 50",
      "clip",
      "dash ",
      // 1 px: on pixel centres, the line starting at (10, 55); the canvas is shifted, not each point.
      "translate 0.5 0.5",
      "begin",
      "fill pink 7", // from the baseline, along the line, down to the baseline, back, closed
      "begin",
      'stroke red 1 ["M",10.5,55.5]',
      // 2 px: on pixel edges, the line starting at (10, 5): shifted back.
      "translate -0.5 -0.5",
      "begin",
      "dash 4,2",
      'stroke blue 2 ["M",10,5]',
      "dash ",
      "restore",
    ]);
  });

  it("skips hidden series, scales widths to device pixels and draws nothing without an x range", () => {
    const ctx = new FakeContext();
    expect(drawLines(plot(ctx, [false, true]), [{ stroke: "red", width: 1 }, { stroke: "blue", width: 1 }], 2)).toBe(1);
    // 1 CSS px at 2 device px per CSS px: 2 device px, on pixel edges.
    expect(ctx.calls.filter((c) => c.startsWith("stroke"))).toEqual(['stroke blue 2 ["M",10,5]']);

    const empty = new FakeContext();
    const p = plot(empty);
    p.scales.x = { min: null, max: null };
    expect(drawLines(p, [{ stroke: "red", width: 1 }, { stroke: "blue", width: 1 }])).toBe(0);
    expect(empty.calls).toEqual([]);
  });
});
