/** History view state <-> URL, and the shapes of the history API's answers. */

export const PRESETS: { id: string; label: string; seconds: number }[] = [
  { id: "15m", label: "15 min", seconds: 900 },
  { id: "1h", label: "1 h", seconds: 3600 },
  { id: "6h", label: "6 h", seconds: 6 * 3600 },
  { id: "24h", label: "24 h", seconds: 86400 },
  { id: "7d", label: "7 d", seconds: 7 * 86400 },
  { id: "30d", label: "30 d", seconds: 30 * 86400 },
];

export type CompareMode = "" | "previous" | "yesterday" | "last_week" | "custom";

export interface HistoryState {
  range: string; // a preset id or "custom"
  from: number | null; // epoch seconds (custom)
  to: number | null;
  series: string[];
  host: string;
  compare: CompareMode;
  from2: number | null; // custom baseline start
}

export function readState(p: URLSearchParams): HistoryState {
  const numOr = (v: string | null) => (v !== null && v !== "" && Number.isFinite(Number(v)) ? Number(v) : null);
  const range = p.get("range") ?? "1h";
  const compare = (p.get("compare") ?? "") as CompareMode;
  return {
    range: range === "custom" || PRESETS.some((x) => x.id === range) ? range : "1h",
    from: numOr(p.get("from")),
    to: numOr(p.get("to")),
    series: p.getAll("s").filter(Boolean),
    host: p.get("host") ?? "",
    compare: ["", "previous", "yesterday", "last_week", "custom"].includes(compare) ? compare : "",
    from2: numOr(p.get("from2")),
  };
}

export function writeState(s: HistoryState): URLSearchParams {
  const p = new URLSearchParams();
  p.set("range", s.range);
  if (s.range === "custom" && s.from !== null && s.to !== null) {
    p.set("from", String(Math.round(s.from)));
    p.set("to", String(Math.round(s.to)));
  }
  for (const k of s.series) p.append("s", k);
  if (s.host) p.set("host", s.host);
  if (s.compare) p.set("compare", s.compare);
  if (s.compare === "custom" && s.from2 !== null) p.set("from2", String(Math.round(s.from2)));
  return p;
}

/** The absolute [from, to] of a state, in epoch seconds. */
export function resolveRange(s: HistoryState, now = Date.now() / 1000): [number, number] {
  if (s.range === "custom" && s.from !== null && s.to !== null && s.to > s.from) return [s.from, s.to];
  const preset = PRESETS.find((x) => x.id === s.range) ?? PRESETS[1];
  return [Math.floor(now - preset.seconds), Math.floor(now)];
}

export interface HistorySeries {
  host: string;
  key: string;
  name: string;
  unit: string | null;
  t: number[];
  min: (number | null)[];
  avg: (number | null)[];
  max: (number | null)[];
  resolution: "raw" | "bucket";
}

export interface HistoryAnswer {
  host: string;
  from: number;
  to: number;
  tier: string;
  step: number;
  series: HistorySeries[];
}

export interface Summary {
  avg: number | null;
  p95: number | null;
  min: number | null;
  max: number | null;
  count: number;
}

export interface CompareSeries {
  key: string;
  name: string;
  unit: string | null;
  current: (number | null)[];
  current_max: (number | null)[];
  baseline: (number | null)[];
  baseline_max: (number | null)[];
  summary: { current: Summary; baseline: Summary; change_pct: number | null };
}

export interface CompareAnswer {
  host: string;
  mode: string;
  from: number;
  to: number;
  baseline_from: number;
  baseline_to: number;
  offset: number;
  tier: string;
  step: number;
  t: number[];
  series: CompareSeries[];
}

export interface SeriesList {
  default_host: string;
  hosts: string[];
  series: { host: string; key: string; name: string; unit: string | null }[];
}

/** Headline series a first visit shows, when the daemon records them. */
export const DEFAULT_SERIES = [
  "cpu_busy_ratio",
  "memory_used_bytes",
  "disk_total_read_bytes_per_second",
  "network_total_rx_bytes_per_second",
  "perf_ipc_ratio",
];

/** `datetime-local` input value for an epoch second, in local time. */
export function toLocalInput(ts: number): string {
  const d = new Date(ts * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(v: string): number | null {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? t / 1000 : null;
}
