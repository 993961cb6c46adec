/**
 * The geometry of a table-cell sparkline: an SVG polyline of column maxima (so a one-tick spike stays
 * visible), scaled to the series' own extent.
 *
 * When the window holds more values than the sparkline has pixel columns, values are pooled into buckets
 * of a fixed number of ticks, aligned to the running tick count rather than to the window's edges. A
 * bucket then keeps its values as the window slides: from one tick to the next, only the newest bucket can
 * change (and only when the new value exceeds its maximum), and the whole line moves by one bucket when a
 * new one begins. On the other ticks the points are the same string as before and the page leaves the SVG
 * alone. The oldest bucket, once values have slid out of it, is left out, so the left end does not flicker.
 */

let colMax = new Float64Array(128);
/** The coordinates of a line being built without a memo, x and y in turn, in whole `SPARK_UNITS`. */
const looseCoords: number[] = [];

/**
 * Sparkline coordinates are in tenths of a CSS pixel (the SVG's `viewBox` is `SPARK_UNITS` times its size):
 * as whole numbers they print without a fraction, and the page turns each into text from a cache instead
 * of formatting (and collecting) a new string per point.
 */
export const SPARK_UNITS = 10;

/**
 * What a sparkline drew last: the column maxima and box behind its points string. Given to `sparkPoints`,
 * a tick that leaves them as they were gets the same string back without building it again (building it
 * was most of the garbage a live page made per tick).
 */
export interface SparkMemo {
  cols: Float64Array;
  points: number;
  width: number;
  height: number;
  text: string;
  /** The numbers behind `text`: an array per sparkline keeps its length from tick to tick. */
  coords: number[];
}

export function sparkMemo(): SparkMemo {
  return { cols: new Float64Array(0), points: -1, width: -1, height: -1, text: "", coords: [] };
}

function unchanged(memo: SparkMemo, points: number, width: number, height: number): boolean {
  if (memo.points !== points || memo.width !== width || memo.height !== height) return false;
  const prev = memo.cols;
  for (let c = 0; c < points; c++) {
    const a = colMax[c];
    const b = prev[c];
    if (a !== b && !(a !== a && b !== b)) return false; // equal, or both NaN (an empty column)
  }
  return true;
}

/**
 * Polyline `points` for `vals` (oldest first, null = missing) in a `width` × `height` box, in `SPARK_UNITS`
 * per pixel (x and y alternating, space separated). The x axis spans at least `minSlots` values (a fresh
 * page does not squeeze its few ticks into a sliver); a series with no value gives "". Zero is always
 * inside the y range, so a flat non-zero series does not sit on the floor.
 * `end` is the running index one past the newest value (the ring's `pushed`), which aligns the buckets.
 * A missing value is null or NaN. With a `memo`, the string of the last call is returned when nothing drawn
 * changed.
 */
export function sparkPoints(
  vals: ArrayLike<number | null>,
  minSlots: number,
  width: number,
  height: number,
  end: number = vals.length,
  memo?: SparkMemo,
): string {
  const len = vals.length;
  const cols = Math.max(2, Math.floor(width));
  const n = Math.max(len, minSlots, 2);
  const per = Math.max(1, Math.ceil(n / cols)); // values per point
  const points = Math.max(2, Math.floor(n / per)); // points across the width
  if (colMax.length < points) colMax = new Float64Array(points);
  colMax.fill(NaN, 0, points);
  const start = end - len; // running index of vals[0]
  const first = Math.floor((end - 1) / per) - points + 1; // bucket drawn at x = 0
  for (let i = 0; i < len; i++) {
    const v = vals[i];
    if (v === null || v !== v) continue;
    const bucket = Math.floor((start + i) / per);
    // Before the left edge, or a bucket that has already lost values off the window.
    if (bucket < first || bucket * per < start) continue;
    const c = bucket - first;
    if (!(colMax[c] >= v)) colMax[c] = v;
  }
  let lo = 0;
  let hi = -Infinity;
  for (let c = 0; c < points; c++) {
    const v = colMax[c];
    if (Number.isNaN(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (memo) {
    if (unchanged(memo, points, width, height)) return memo.text;
    if (memo.cols.length < points) memo.cols = new Float64Array(colMax.length);
    memo.cols.set(colMax.subarray(0, points));
    memo.points = points;
    memo.width = width;
    memo.height = height;
    memo.text = "";
  }
  if (hi === -Infinity) return "";
  if (!(hi > lo)) hi = lo + 1;
  const scaleY = (height - 2) / (hi - lo);
  const stepX = (cols - 1) / (points - 1);
  // Numbers in a reused array joined once: one new string per line, where building it point by point made
  // a string per number, per pair and per join.
  const coords = memo ? memo.coords : looseCoords;
  let k = 0;
  for (let c = 0; c < points; c++) {
    const v = colMax[c];
    if (Number.isNaN(v)) continue;
    coords[k++] = Math.round(c * stepX * SPARK_UNITS);
    coords[k++] = Math.round((height - 1 - (v - lo) * scaleY) * SPARK_UNITS);
  }
  if (coords.length !== k) coords.length = k;
  const out = coords.join(" ");
  if (memo) memo.text = out;
  return out;
}
