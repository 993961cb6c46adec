/**
 * The geometry of a table-cell sparkline: an SVG polyline with at most one point per pixel column (the
 * column's maximum, so a one-tick spike stays visible), scaled to the series' own extent.
 */

let colMax = new Float64Array(128);

/**
 * Polyline `points` for `vals` (oldest first, null = missing) in a `width` × `height` box. The x axis spans
 * at least `minSlots` values (a fresh page does not squeeze its few ticks into a sliver); a series with no
 * value gives "". Zero is always inside the y range, so a flat non-zero series does not sit on the floor.
 */
export function sparkPoints(vals: ArrayLike<number | null>, minSlots: number, width: number, height: number): string {
  const len = vals.length;
  const cols = Math.max(2, Math.floor(width));
  if (colMax.length < cols) colMax = new Float64Array(cols);
  colMax.fill(NaN, 0, cols);
  const n = Math.max(len, minSlots, 2);
  const off = n - len;
  const step = (cols - 1) / (n - 1);
  let lo = 0;
  let hi = -Infinity;
  for (let i = 0; i < len; i++) {
    const v = vals[i];
    if (v === null) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    const c = Math.min(cols - 1, Math.floor((off + i) * step + 0.5));
    if (!(colMax[c] >= v)) colMax[c] = v;
  }
  if (hi === -Infinity) return "";
  if (!(hi > lo)) hi = lo + 1;
  const scaleY = (height - 2) / (hi - lo);
  let out = "";
  for (let c = 0; c < cols; c++) {
    const v = colMax[c];
    if (Number.isNaN(v)) continue;
    const y = Math.round((height - 1 - (v - lo) * scaleY) * 10) / 10;
    out += out ? ` ${c},${y}` : `${c},${y}`;
  }
  return out;
}
