/**
 * Number formatting for every value the dashboard shows. Units come from the server's metric catalogue
 * (base units only); rates and physical quantities use SI prefixes (1 kB/s = 1000 B/s), sizes use IEC
 * prefixes (1 KiB = 1024 B), because that is what `free`, `df -h` and network tools have taught operators.
 */

export const DASH = "—";

const SI_PREFIX: [number, string][] = [
  [1e15, "P"],
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
  [1, ""],
  [1e-3, "m"],
  [1e-6, "µ"],
  [1e-9, "n"],
];

const IEC_PREFIX = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

function isNum(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** Three significant digits, no trailing ".0" noise for integers below 1000. */
export function sig(v: number, digits = 3): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 10 ** digits) return Math.round(v).toString();
  let decimals = Math.min(6, Math.max(0, digits - 1 - Math.floor(Math.log10(a))));
  // 0.9996 rounds to "1.000": one decimal fewer keeps the count of significant digits.
  if (decimals > 0 && Math.abs(Number(v.toFixed(decimals))) >= 10 ** (digits - decimals)) decimals--;
  return v.toFixed(decimals);
}

/** `formatSI(1234, "B/s")` → "1.23 kB/s". Values below 1 only get sub-unit prefixes when `small` is set. */
export function formatSI(v: number | null | undefined, unit: string, opts: { small?: boolean } = {}): string {
  if (!isNum(v)) return DASH;
  const a = Math.abs(v);
  if (a === 0) return `0 ${unit}`.trimEnd();
  for (const [scale, prefix] of SI_PREFIX) {
    if (scale < 1 && !opts.small) break;
    if (a >= scale * 0.9995) {
      return `${sig(v / scale)} ${prefix}${unit}`.trimEnd();
    }
  }
  if (!opts.small) return `${sig(v)} ${unit}`.trimEnd();
  const [scale, prefix] = SI_PREFIX[SI_PREFIX.length - 1];
  return `${sig(v / scale)} ${prefix}${unit}`.trimEnd();
}

/** `formatIEC(1536)` → "1.50 KiB". */
export function formatIEC(v: number | null | undefined, unit = "B"): string {
  if (!isNum(v)) return DASH;
  let a = Math.abs(v);
  let i = 0;
  while (a >= 1023.5 && i < IEC_PREFIX.length - 1) {
    a /= 1024;
    i++;
  }
  const scaled = v < 0 ? -a : a;
  return `${i === 0 ? Math.round(scaled).toString() : sig(scaled)} ${IEC_PREFIX[i]}${unit}`;
}

export function formatPercent(v: number | null | undefined, digits = 1): string {
  if (!isNum(v)) return DASH;
  return `${v.toFixed(digits)} %`;
}

/** Durations: "850 ns", "12.3 ms", "4.20 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(seconds: number | null | undefined): string {
  if (!isNum(seconds)) return DASH;
  const s = Math.abs(seconds);
  const sign = seconds < 0 ? "-" : "";
  if (s === 0) return "0 s";
  if (s < 60) return sign + formatSI(s, "s", { small: true });
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${sign}${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${sign}${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

export function formatCount(v: number | null | undefined): string {
  if (!isNum(v)) return DASH;
  if (Math.abs(v) < 1e4) return Number.isInteger(v) ? v.toString() : sig(v);
  return formatSI(v, "");
}

/**
 * Format a value in one of the catalogue's units (perfpulse.model.UNITS). An unknown unit is shown as a
 * plain number followed by the unit's name, so a new unit never hides a value.
 */
export function formatValue(v: number | null | undefined, unit: string): string {
  if (!isNum(v)) return DASH;
  switch (unit) {
    case "ratio":
      return formatPercent(v * 100);
    case "percent":
      return formatPercent(v);
    case "bytes":
      return formatIEC(v);
    case "bytes_per_second":
      return formatSI(v, "B/s");
    case "seconds":
      return formatDuration(v);
    case "seconds_per_second":
      // Time spent per second of wall time (PSI stall, CPU seconds): shown as a share of one second.
      return formatSI(v, "s/s", { small: true });
    case "per_second":
      return formatSI(v, "/s");
    case "count":
      return formatCount(v);
    case "hertz":
      return formatSI(v, "Hz");
    case "celsius":
      return `${v.toFixed(1)} °C`;
    case "joules":
      return formatSI(v, "J");
    case "watts":
      return formatSI(v, "W", { small: true });
    case "info":
      return String(v);
    default:
      return `${sig(v)} ${unit.replaceAll("_", " ")}`;
  }
}

/** The short unit label for chart axes. */
export function unitLabel(unit: string): string {
  const labels: Record<string, string> = {
    ratio: "%",
    percent: "%",
    bytes: "B",
    bytes_per_second: "B/s",
    seconds: "s",
    seconds_per_second: "s/s",
    per_second: "/s",
    count: "",
    hertz: "Hz",
    celsius: "°C",
    joules: "J",
    watts: "W",
    info: "",
  };
  return labels[unit] ?? unit.replaceAll("_", " ");
}

/** Compact axis tick: keeps the unit's family (IEC for bytes) but drops digits. */
export function formatAxis(v: number, unit: string): string {
  if (!isNum(v)) return "";
  if (unit === "ratio") return `${Math.round(v * 100)}%`;
  if (unit === "percent") return `${Math.round(v)}%`;
  if (unit === "bytes") return formatIEC(v).replace(" ", "");
  return formatValue(v, unit).replace(" ", "");
}

function pad(n: number, w = 2): string {
  return n.toString().padStart(w, "0");
}

/** Local wall time of a Unix timestamp (seconds): "14:03:07". */
export function formatLocalTime(ts: number, withDate = false): string {
  const d = new Date(ts * 1000);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (!withDate) return t;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
}

/** ISO 8601 UTC of a Unix timestamp (seconds), for tooltips: "2026-11-25T13:03:07Z". */
export function formatUTC(ts: number): string {
  return new Date(Math.round(ts) * 1000).toISOString().replace(".000Z", "Z");
}

/** Signed percent change, "+12.5 %" / "−3.0 %", or a dash when the base is zero or missing. */
export function formatChange(pct: number | null | undefined): string {
  if (!isNum(pct)) return DASH;
  const sign = pct > 0 ? "+" : pct < 0 ? "−" : "±";
  return `${sign}${Math.abs(pct).toFixed(1)} %`;
}

/** A metric name without its unit suffix, for labels: "disk_read_bytes_per_second" → "disk read". */
export function humanName(name: string, unit: string): string {
  let n = name;
  for (const suffix of ["_total", `_${unit}`, "_per_second", "_bytes", "_ratio", "_seconds"]) {
    if (n.endsWith(suffix) && n.length > suffix.length) n = n.slice(0, -suffix.length);
  }
  return n.replaceAll("_", " ");
}

/** Units a retention horizon is edited in, with their length in seconds. */
export const DURATION_UNITS = { hours: 3600, days: 86400 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;

/**
 * A horizon in seconds as the number and unit a person would type: whole days when it is a whole number of
 * days (90 days, not 2160 hours), else hours (possibly fractional, so no second is lost in the round trip).
 */
export function splitDuration(seconds: number): { value: string; unit: DurationUnit } {
  if (!isNum(seconds)) return { value: "", unit: "days" };
  if (seconds >= DURATION_UNITS.days && seconds % DURATION_UNITS.days === 0) return { value: String(seconds / DURATION_UNITS.days), unit: "days" };
  return { value: String(Number((seconds / DURATION_UNITS.hours).toFixed(6))), unit: "hours" };
}

/**
 * Seconds for a typed number and unit, rounded to the second; null when it is not a number. A number input
 * bound in Svelte yields a number (or null when empty), a text field a string: both are taken.
 */
export function durationSeconds(value: string | number | null, unit: DurationUnit): number | null {
  const text = String(value ?? "").trim();
  if (!text) return null;
  const n = Number(text);
  if (!Number.isFinite(n)) return null;
  return Math.round(n * DURATION_UNITS[unit]);
}

/** A retention horizon in words: "48 hours" stays "2 days", 7300 days reads "20 years". */
export function formatHorizon(seconds: number | null | undefined): string {
  if (!isNum(seconds)) return DASH;
  const year = 365 * DURATION_UNITS.days;
  const plural = (n: number, unit: string) => `${Number(n.toFixed(2))} ${unit}${n === 1 ? "" : "s"}`;
  if (seconds >= year && seconds % year === 0) return plural(seconds / year, "year");
  if (seconds >= DURATION_UNITS.days && seconds % DURATION_UNITS.days === 0) return plural(seconds / DURATION_UNITS.days, "day");
  return plural(seconds / DURATION_UNITS.hours, "hour");
}
