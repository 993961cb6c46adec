/** Shapes shared by components (kept out of .svelte files so TypeScript can import them anywhere). */

export interface ChartSeries {
  label: string;
  color?: string;
  /** Draw as the lower/upper edge of a min–max band instead of a line. */
  band?: "lower" | "upper";
  dash?: number[];
  width?: number;
  fill?: boolean;
}

export interface Column<R> {
  key: string;
  label: string;
  numeric?: boolean;
  format?: (v: unknown, row: R) => string;
  title?: (row: R) => string | undefined;
}
