/**
 * A lean line-path builder for uPlot's live charts. uPlot's own `linear()` builder is general (any
 * orientation and direction, gaps drawn through and clipped out afterwards, band clips) and goes through
 * several closures per point; a live dashboard redraws every chart every second, and the per-point cost of
 * building the paths was the largest part of a chart's redraw. This one does a plain horizontal line on
 * linear scales: one pass, integer device pixels like uPlot's (so 1 px lines stay crisp), a line that stops
 * at a missing value and starts again after it, and the per-pixel-column min/max decimation uPlot applies
 * when there are more points than pixels (a one-tick spike stays visible).
 */
import type uPlot from "uplot";

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

/**
 * The builder as a uPlot `paths` option. Scales other than plain linear ones (log, ordinal) are handed to
 * uPlot's own builder.
 */
export function livePaths(fallback: uPlot.Series.PathBuilder): uPlot.Series.PathBuilder {
  return (u, seriesIdx, idx0, idx1) => {
    const s = u.series[seriesIdx];
    const sx = u.scales.x;
    const sy = u.scales[s.scale ?? "y"];
    if (
      !sy ||
      (sx.distr ?? 1) !== 1 ||
      (sy.distr ?? 1) !== 1 ||
      (sx.ori ?? 0) !== 0 ||
      (sx.dir ?? 1) !== 1 ||
      (sy.dir ?? 1) !== 1 ||
      sx.min == null ||
      sx.max == null ||
      sy.min == null ||
      sy.max == null
    ) {
      return fallback(u, seriesIdx, idx0, idx1);
    }
    const g: Geometry = {
      left: u.bbox.left,
      top: u.bbox.top,
      width: u.bbox.width,
      height: u.bbox.height,
      xMin: sx.min,
      xMax: sx.max,
      yMin: sy.min,
      yMax: sy.max,
    };
    const stroke = new Path2D();
    const fill = s.fill != null ? new Path2D() : undefined;
    // uPlot fills down to zero on a linear scale (its seriesFillTo), clamped to the plot area here.
    const fillTo = Math.min(Math.max(0, sy.min), sy.max);
    traceLine(u.data[0] as ArrayLike<number>, u.data[seriesIdx] as ArrayLike<number | null>, idx0, idx1, g, stroke, fill, fillTo);
    const paths: uPlot.Series.Paths = { stroke, fill: fill ?? null, clip: null, band: null, gaps: [], flags: 0 };
    return paths;
  };
}
