/**
 * Lean line drawing for the uPlot charts. uPlot's own series drawing is general (any orientation and
 * direction, gaps drawn through and clipped out afterwards, band clips), goes through several closures per
 * point and wraps every line in a path object, a clip path and a save/restore of the canvas; a live dashboard
 * redraws every chart every second, and that was the largest part of a chart's redraw. Here a plain
 * horizontal line on linear scales is traced in one pass, in integer device pixels like uPlot's (so 1 px
 * lines stay crisp): a line that stops at a missing value and starts again after it, with the per-pixel-column
 * min/max decimation uPlot applies when there are more points than pixels (a one-tick spike stays visible).
 */

/** The subset of `Path2D` (and of a canvas context) the builder draws with. */
export interface PathSink {
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
  closePath(): void;
}

/** Where the plot area is on the canvas (device pixels) and which values its edges stand for. */
export interface Geometry {
  left: number;
  top: number;
  width: number;
  height: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
}

/**
 * Trace `ys` against `xs` (indices `i0`..`i1`) into `stroke`, and, when `fill` is given, the area between
 * the line and the value `fillTo` into it (one closed shape per unbroken run of values). Returns the
 * number of points drawn.
 */
export function traceLine(
  xs: ArrayLike<number>,
  ys: ArrayLike<number | null | undefined>,
  i0: number,
  i1: number,
  g: Geometry,
  stroke: PathSink,
  fill?: PathSink,
  fillTo = 0,
): number {
  const kx = g.xMax > g.xMin ? g.width / (g.xMax - g.xMin) : 0;
  const ky = g.yMax > g.yMin ? g.height / (g.yMax - g.yMin) : 0;
  const bottom = g.top + g.height;
  const baseY = Math.round(bottom - (fillTo - g.yMin) * ky);
  let drawn = 0;
  // The pixel column being drawn: its x, the y the line came in at, and the extremes and last y inside it.
  let colX = NaN;
  let inY = 0;
  let minY = 0;
  let maxY = 0;
  let outY = 0;
  let runStartX = NaN; // x where the current unbroken run began (NaN: the pen is up)
  // The end of a level stretch not drawn yet: consecutive columns at one y make one segment, not one per
  // column (a series idling at zero is most of the lines on a dashboard, and each vertex is a call into the
  // canvas and a segment to rasterise).
  let levelX = NaN;
  let levelY = 0;

  const flushLevel = (): void => {
    if (Number.isNaN(levelX)) return;
    stroke.lineTo(levelX, levelY);
    fill?.lineTo(levelX, levelY);
    levelX = NaN;
  };
  const closeColumn = (): void => {
    // Several points in one column: a vertical stroke over their range, leaving at the last one.
    if (minY !== maxY || outY !== inY) {
      flushLevel();
      stroke.lineTo(colX, minY);
      stroke.lineTo(colX, maxY);
      stroke.lineTo(colX, outY);
      if (fill) {
        fill.lineTo(colX, minY);
        fill.lineTo(colX, maxY);
        fill.lineTo(colX, outY);
      }
    }
  };
  const endRun = (): void => {
    if (Number.isNaN(runStartX)) return;
    closeColumn();
    flushLevel();
    if (fill) {
      fill.lineTo(colX, baseY);
      fill.lineTo(runStartX, baseY);
      fill.closePath();
    }
    runStartX = NaN;
    colX = NaN;
  };

  for (let i = i0; i <= i1; i++) {
    const v = ys[i];
    if (v == null || !Number.isFinite(v)) {
      endRun();
      continue;
    }
    // Whole pixels: a whole number is stored and passed to the canvas as is, where a fraction is a new heap
    // object at every step (thousands of points per tick, each collected again).
    const x = Math.round(g.left + (xs[i] - g.xMin) * kx);
    const y = Math.round(bottom - (v - g.yMin) * ky);
    drawn++;
    if (Number.isNaN(runStartX)) {
      stroke.moveTo(x, y);
      if (fill) {
        fill.moveTo(x, baseY);
        fill.lineTo(x, y);
      }
      runStartX = x;
    } else if (x === colX) {
      if (y < minY) minY = y;
      else if (y > maxY) maxY = y;
      outY = y;
      continue;
    } else {
      closeColumn();
      if (y === outY) {
        levelX = x; // level with where the column before left off: extend the stretch
        levelY = y;
      } else {
        flushLevel();
        stroke.lineTo(x, y);
        fill?.lineTo(x, y);
      }
    }
    colX = x;
    inY = minY = maxY = outY = y;
  }
  endRun();
  return drawn;
}

/** How one line of a chart is drawn (CSS pixels for the width). */
export interface LineStyle {
  stroke: string;
  width: number;
  fill?: string;
  dash?: number[];
}

/** The part of a 2D canvas context the lines are drawn with. */
export interface LineContext extends PathSink {
  save(): void;
  restore(): void;
  beginPath(): void;
  rect(x: number, y: number, w: number, h: number): void;
  clip(): void;
  translate(x: number, y: number): void;
  stroke(): void;
  fill(): void;
  setLineDash(segments: number[]): void;
  strokeStyle: string | CanvasGradient | CanvasPattern;
  fillStyle: string | CanvasGradient | CanvasPattern;
  lineWidth: number;
  lineJoin: CanvasLineJoin;
  lineCap: CanvasLineCap;
}

/** What `drawLines` reads of a chart: uPlot's own fields, by the names uPlot gives them. */
export interface LinePlot {
  ctx: LineContext;
  bbox: { left: number; top: number; width: number; height: number };
  data: ArrayLike<ArrayLike<number | null | undefined>>;
  series: { show?: boolean; scale?: string }[];
  scales: Record<string, { min?: number | null; max?: number | null }>;
}

const NO_PATH: PathSink = { moveTo() {}, lineTo() {}, closePath() {} };
const NO_DASH: number[] = [];

/**
 * Draw every shown line of a chart straight onto its canvas, as one job: one clip to the plot area for all of
 * them, and the points traced into the context itself. uPlot's own series drawing allocates a path object
 * and a clip path per line and saves, clips and restores the context around each; on a chart redrawn every
 * second with eight lines that was a third of the redraw. `styles[i - 1]` is the style of series `i`;
 * `pxRatio` turns CSS pixel widths into device pixels. Returns the number of lines drawn.
 */
export function drawLines(u: LinePlot, styles: LineStyle[], pxRatio = 1): number {
  const sx = u.scales.x;
  const xs = u.data[0] as ArrayLike<number>;
  if (!sx || sx.min == null || sx.max == null || !xs || xs.length === 0) return 0;
  const { left, top, width, height } = u.bbox;
  const ctx = u.ctx;
  let drawn = 0;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.lineJoin = "round";
  ctx.lineCap = "butt";
  ctx.setLineDash(NO_DASH);
  let shifted = 0;
  for (let i = 1; i < u.series.length; i++) {
    const s = u.series[i];
    const st = styles[i - 1];
    const sy = u.scales[s.scale ?? "y"];
    if (s.show === false || !st || !sy || sy.min == null || sy.max == null) continue;
    const ys = u.data[i];
    const w = Math.round(st.width * pxRatio * 1000) / 1000;
    // Odd widths sit on pixel centres, as uPlot aligns them, so that a 1 px line stays one pixel wide. The
    // half pixel is a shift of the canvas, set when it changes (the lines of a chart mostly share a width),
    // so that the traced coordinates stay whole numbers.
    const offset = (w % 2) / 2;
    const g: Geometry = { left, top, width, height, xMin: sx.min, xMax: sx.max, yMin: sy.min, yMax: sy.max };
    if (offset !== shifted) {
      ctx.translate(offset - shifted, offset - shifted);
      shifted = offset;
    }
    if (st.fill) {
      ctx.beginPath();
      traceLine(xs, ys, 0, xs.length - 1, g, NO_PATH, ctx, Math.min(Math.max(0, sy.min), sy.max));
      ctx.fillStyle = st.fill;
      ctx.fill();
    }
    if (w > 0) {
      ctx.beginPath();
      traceLine(xs, ys, 0, xs.length - 1, g, ctx);
      ctx.strokeStyle = st.stroke;
      ctx.lineWidth = w;
      if (st.dash) ctx.setLineDash(st.dash);
      ctx.stroke();
      if (st.dash) ctx.setLineDash(NO_DASH);
    }
    drawn++;
  }
  ctx.restore();
  return drawn;
}
