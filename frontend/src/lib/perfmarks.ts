/** Timing marks the benchmark and the end-to-end tests read from the page (`performance.getEntriesByName`). */

let firstFull = false;

/** The first chart drawn with every backfilled point: "time to first full chart" after a load. */
export function markFirstFullChart(points: number): void {
  if (firstFull) return;
  firstFull = true;
  performance.mark("perfpulse:first-full-chart", { detail: { points } });
}
