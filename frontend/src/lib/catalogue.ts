/**
 * The metric catalogue the server sends, and how to find a metric's numbers in a collector's data.
 * This mirrors perfpulse.model.iter_samples: a dotted `path` where `*` walks every key of a dict and binds
 * it to the next label. The dashboard knows collectors only through this, so a new collector shows up in
 * the generic panels without a UI change.
 */

export interface MetricSpec {
  name: string;
  unit: string;
  kind: "gauge" | "counter" | string;
  description: string;
  labels: string[];
  path?: string;
}

export interface CollectorInfo {
  name: string;
  enabled?: boolean;
  available?: boolean;
  reason?: string | null;
  hint?: string | null;
  catalogue: MetricSpec[];
}

export interface CollectorMeta {
  timestamp?: number;
  duration_ms?: number;
  error?: string | null;
  stale?: boolean;
  available?: boolean;
}

export interface SnapshotMsg {
  host: string;
  wall_time: number;
  monotonic?: number;
  seq: number;
  interval: number;
  collectors: Record<string, { data: Record<string, unknown>; meta: CollectorMeta }>;
}

export function seriesKey(name: string, labels: [string, string][]): string {
  if (labels.length === 0) return name;
  return `${name}{${labels.map(([k, v]) => `${k}="${v}"`).join(",")}}`;
}

/** Parse `name{a="x",b="y"}` back into its parts (labels in order). */
export function parseSeriesKey(key: string): { name: string; labels: [string, string][] } {
  const i = key.indexOf("{");
  if (i < 0) return { name: key, labels: [] };
  const labels: [string, string][] = [];
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (const m of key.slice(i + 1, -1).matchAll(re)) labels.push([m[1], m[2]]);
  return { name: key.slice(0, i), labels };
}

function toNumber(v: unknown): number | null {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  return null;
}

interface Compiled {
  parts: string[];
  /** Series keys already built, by the label values joined with NUL: a tick reuses them, not re-formats. */
  keys: Map<string, string>;
}
const compiled = new WeakMap<MetricSpec, Compiled>();

function compile(spec: MetricSpec): Compiled {
  let c = compiled.get(spec);
  if (!c) compiled.set(spec, (c = { parts: (spec.path ?? "").split("."), keys: new Map() }));
  return c;
}

/**
 * Every (series key, value) of `spec` present in one collector's data; missing or null values skipped.
 * Runs for every catalogue metric on every tick, so the path is split once per spec and each series key is
 * formatted once per label combination.
 */
export function extract(spec: MetricSpec, data: unknown, out: Map<string, number | null>): void {
  if (!spec.path) return;
  const c = compile(spec);
  const parts = c.parts;
  const bound: string[] = [];
  const walk = (node: unknown, i: number): void => {
    if (i === parts.length) {
      const v = toNumber(node);
      if (v === null) return;
      if (bound.length === 0 && spec.labels.length === 0) {
        out.set(spec.name, v);
        return;
      }
      const id = bound.join("\u0000");
      let key = c.keys.get(id);
      if (key === undefined) {
        key = seriesKey(spec.name, spec.labels.map((l, j) => [l, bound[j]]));
        if (c.keys.size > 4096) c.keys.clear(); // label values that churn (pids) must not grow it forever
        c.keys.set(id, key);
      }
      out.set(key, v);
      return;
    }
    if (node === null || typeof node !== "object" || Array.isArray(node)) return;
    const part = parts[i];
    const obj = node as Record<string, unknown>;
    if (part === "*") {
      for (const k in obj) {
        bound.push(k);
        walk(obj[k], i + 1);
        bound.pop();
      }
    } else if (part in obj) {
      walk(obj[part], i + 1);
    }
  };
  walk(data, 0);
}

/** A nested value by dotted path, or undefined. */
export function dig(obj: unknown, path: string): unknown {
  let node = obj;
  for (const p of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[p];
  }
  return node;
}

export function num(v: unknown): number | null {
  return toNumber(v);
}

/** Specs indexed by metric name across collectors. */
export function indexCatalogue(collectors: CollectorInfo[]): Map<string, MetricSpec & { collector: string }> {
  const m = new Map<string, MetricSpec & { collector: string }>();
  for (const c of collectors) for (const s of c.catalogue ?? []) m.set(s.name, { ...s, collector: c.name });
  return m;
}
