/**
 * The live stream: one WebSocket, the last minutes of every catalogue series in ring buffers, and the
 * latest snapshot for tables. Components read `live.version` to know when to redraw; the rings themselves
 * are not reactive (a deep proxy over thousands of numbers per tick would cost more than the drawing).
 */
import { wsUrl, get } from "./api";
import { extract, type CollectorInfo, type MetricSpec, type SnapshotMsg } from "./catalogue";
import { LiveConnection, type ConnState } from "./connection";
import { KeptValues } from "./kept";
import { Backoff } from "./reconnect";
import { Timeline } from "./ring";
import { session } from "./session.svelte";

/** Seconds of history the live charts show. */
export const WINDOW_SECONDS = 300;

export function capacityFor(interval: number): number {
  const i = interval > 0 ? interval : 1;
  return Math.min(6000, Math.ceil(WINDOW_SECONDS / i) + 2);
}

interface Hello {
  type: "hello";
  protocol?: number;
  host?: string;
  interval?: number;
  catalogue?: Record<string, MetricSpec[]> | CollectorInfo[];
  collectors?: CollectorInfo[] | Record<string, MetricSpec[]>;
  role?: string;
  /** How many backfill ticks follow the hello. */
  backfill?: number;
  /** Data keys a lean tick leaves out while unchanged, per collector. */
  sticky?: Record<string, string[]>;
}

function normaliseCatalogue(raw: unknown): CollectorInfo[] {
  if (Array.isArray(raw)) {
    return raw.map((c) => ({ ...(c as CollectorInfo), catalogue: (c as CollectorInfo).catalogue ?? [] }));
  }
  if (raw && typeof raw === "object") {
    return Object.entries(raw as Record<string, unknown>).map(([name, v]) => {
      if (Array.isArray(v)) return { name, catalogue: v as MetricSpec[] };
      const info = v as Partial<CollectorInfo>;
      return { ...info, name, catalogue: info.catalogue ?? [] } as CollectorInfo;
    });
  }
  return [];
}

function asSnapshot(m: Record<string, unknown>): SnapshotMsg | null {
  const inner = (m.snapshot ?? m.data ?? m) as Record<string, unknown>;
  if (inner && typeof inner === "object" && typeof inner.wall_time === "number" && inner.collectors) {
    return inner as unknown as SnapshotMsg;
  }
  return null;
}

export interface TickStats {
  /** Main-thread milliseconds each recent tick took to handle and render (message → DOM updated). */
  durations: number[];
  received: number;
}

class LiveStore {
  state = $state<ConnState>("closed");
  reason = $state("");
  retryInMs = $state<number | null>(null);
  attempt = $state(0);
  host = $state("");
  interval = $state(1);
  protocol = $state<number | null>(null);
  collectors = $state.raw<CollectorInfo[]>([]);
  latest = $state.raw<SnapshotMsg | null>(null);
  /** Bumped once per displayed update; charts and tables redraw on it. */
  version = $state(0);
  /** Bumped when the set of series changes (a device or CPU appeared): lists of lines rebuild on it. */
  keysVersionHint = $state(0);
  private lastKeysVersion = -1;
  paused = $state(false);
  /** Points the server backfilled on this connection (a chart holding them is "full"). */
  backfilled = $state(0);

  timeline = new Timeline(capacityFor(1));
  private index = new Map<string, string[]>();
  private indexedAt = -1;
  private indexedTimeline: Timeline | null = null;
  private specs: { collector: string; spec: MetricSpec }[] = [];
  private conn: LiveConnection | null = null;
  private pending: SnapshotMsg | null = null;
  readonly stats: TickStats = { durations: [], received: 0 };
  private subscribed: string[] | null = null;
  private readonly kept = new KeptValues();

  start(): void {
    if (this.conn) return;
    this.conn = new LiveConnection({
      // Lean ticks: the perf events that cannot be counted and the processes' command lines (over half of
      // a tick) come only when they change, which the page then parses and the network carries once.
      url: () => `${wsUrl()}?lean=1`,
      backoff: new Backoff({ baseMs: 500, maxMs: 10_000, jitter: 0.5, maxAttempts: 12 }),
      onMessage: (msg) => this.onMessage(msg),
      onState: (s, d) => {
        this.state = s;
        this.reason = d.reason;
        this.retryInMs = d.retryInMs;
        this.attempt = d.attempt;
      },
      stillAuthorised: async () => {
        try {
          await get("auth/me", { quiet401: true });
          return true;
        } catch (err) {
          const status = (err as { status?: number }).status;
          // The daemon closed the stream because the session was revoked (a password change, a logout
          // elsewhere): the same end as a 401 on any request.
          if (status === 401) {
            session.ended();
            return false;
          }
          if (status === 403) {
            void session.refresh();
            return false;
          }
          throw err;
        }
      },
      silenceMs: 10_000,
    });
    this.conn.start();
  }

  stop(): void {
    this.conn?.stop();
    this.conn = null;
  }

  retry(): void {
    this.conn?.retry();
  }

  setPaused(p: boolean): void {
    this.paused = p;
    if (!p && this.pending) this.render();
  }

  /** Series keys of one metric name present in the live window, e.g. every `disk_..{device="sda"}`. */
  keys(name: string): string[] {
    const tl = this.timeline;
    if (tl !== this.indexedTimeline || tl.keysVersion !== this.indexedAt) {
      this.index.clear();
      for (const k of tl.series.keys()) {
        const i = k.indexOf("{");
        const n = i < 0 ? k : k.slice(0, i);
        let list = this.index.get(n);
        if (!list) this.index.set(n, (list = []));
        list.push(k);
      }
      this.indexedAt = tl.keysVersion;
      this.indexedTimeline = tl;
    }
    return this.index.get(name) ?? [];
  }

  /** Latest value of a series key. */
  value(key: string): number | null {
    return this.timeline.latest(key);
  }

  /** The catalogue spec of a metric, by name. */
  spec(name: string): MetricSpec | undefined {
    for (const s of this.specs) if (s.spec.name === name) return s.spec;
    return undefined;
  }

  private setCatalogue(list: CollectorInfo[]): void {
    this.collectors = list;
    this.specs = list.flatMap((c) => (c.catalogue ?? []).map((spec) => ({ collector: c.name, spec })));
  }

  private readonly scratch = new Map<string, number | null>();

  private ingest(snap: SnapshotMsg): boolean {
    if (snap.interval && Math.abs(snap.interval - this.interval) > 1e-9) {
      this.interval = snap.interval;
      this.timeline = this.timeline.resize(capacityFor(snap.interval));
    }
    // One map reused tick after tick: the timeline copies the values into its rings.
    const values = this.scratch;
    values.clear();
    for (const { collector, spec } of this.specs) {
      const c = snap.collectors[collector];
      if (c?.data) extract(spec, c.data, values);
    }
    return this.timeline.push(snap.wall_time, values);
  }

  private show(snap: SnapshotMsg): void {
    this.pending = snap;
    if (this.paused || this.frame !== null) return;
    // Ticks that arrive together (the backfill after a connect) are drawn once, in the next frame.
    this.frame = requestAnimationFrame(() => this.render());
  }

  private frame: number | null = null;
  private awaitingBackfill = 0;
  private backfillTimer: ReturnType<typeof setTimeout> | null = null;

  private endBackfill(): void {
    this.awaitingBackfill = 0;
    if (this.backfillTimer) clearTimeout(this.backfillTimer);
    this.backfillTimer = null;
    if (this.pending) this.show(this.pending);
  }
  private ingestMs = 0;
  private readonly frameHooks = new Set<() => void>();

  /**
   * Run `draw` in each frame that shows a new tick, before the reactive updates of that frame. For many
   * small per-tick drawings (sparklines) that would otherwise each need a derived value and an effect.
   * Returns the function that removes it.
   */
  onFrame(draw: () => void): () => void {
    this.frameHooks.add(draw);
    return () => this.frameHooks.delete(draw);
  }

  private render(): void {
    this.frame = null;
    const snap = this.pending;
    if (!snap || this.paused) return;
    const t0 = performance.now();
    this.pending = null;
    if (this.backfilled === 0) this.backfilled = this.timeline.length;
    this.latest = snap;
    this.version++;
    if (this.timeline.keysVersion !== this.lastKeysVersion) {
      this.lastKeysVersion = this.timeline.keysVersion;
      this.keysVersionHint++;
    }
    for (const draw of this.frameHooks) draw();
    const busyBefore = this.ingestMs;
    this.ingestMs = 0;
    // Main-thread cost of this update: ingesting the tick(s) plus everything the redraw queued (Svelte's
    // effects and uPlot's draws run as microtasks; style, layout and paint follow before the next task).
    // One channel for the page's life: opening and closing one per tick costs more than the measuring.
    this.measuring.push(t0 - busyBefore);
    this.clock.port2.postMessage(0);
  }

  private readonly measuring: number[] = [];
  private readonly clock = (() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      const start = this.measuring.shift();
      if (start === undefined) return;
      const arr = this.stats.durations;
      arr.push(performance.now() - start);
      if (arr.length > 600) arr.splice(0, arr.length - 600);
    };
    return ch;
  })();

  private onMessage(raw: unknown): void {
    if (!raw || typeof raw !== "object") return;
    const m = raw as Record<string, unknown>;
    switch (m.type) {
      case "hello": {
        const h = m as unknown as Hello;
        this.protocol = h.protocol ?? null;
        this.host = h.host ?? "";
        this.interval = h.interval && h.interval > 0 ? h.interval : 1;
        this.timeline = new Timeline(capacityFor(this.interval));
        this.setCatalogue(normaliseCatalogue(h.catalogue ?? h.collectors));
        this.kept.reset(h.sticky);
        this.backfilled = 0;
        this.keysVersionHint++;
        // The hello says how many backfill ticks follow: they are drawn together, once all are in.
        this.awaitingBackfill = typeof h.backfill === "number" && h.backfill > 0 ? h.backfill : 0;
        if (this.backfillTimer) clearTimeout(this.backfillTimer);
        this.backfillTimer = this.awaitingBackfill > 0 ? setTimeout(() => this.endBackfill(), 3000) : null;
        if (this.subscribed) this.conn?.send({ type: "subscribe", collectors: this.subscribed });
        return;
      }
      case "config": {
        const iv = (m.config as Record<string, unknown> | undefined)?.interval ?? m.interval;
        if (typeof iv === "number" && iv > 0) this.interval = iv;
        // Collectors switched on or off, or a new perf event set: the catalogue changed, and a fresh
        // connection brings the new one (with the backfill, so the charts stay full).
        const changed = Array.isArray(m.changed) ? (m.changed as string[]) : [];
        if (changed.includes("collectors") || changed.includes("perf_events")) this.conn?.retry();
        return;
      }
      default: {
        const s = asSnapshot(m);
        if (!s) return;
        const t0 = performance.now();
        // A kept value older than the one the tick refers to (a tick was skipped): the next comes in full.
        if (!this.kept.fill(s)) this.conn?.send({ type: "resync" });
        if (this.awaitingBackfill > 0) {
          this.ingest(s);
          this.pending = s;
          if (--this.awaitingBackfill === 0) this.endBackfill();
          return;
        }
        this.stats.received++;
        if (this.ingest(s)) this.show(s);
        this.ingestMs += performance.now() - t0;
      }
    }
  }
}

export const live = new LiveStore();

/**
 * The latest snapshot and tick for a panel, frozen while the panel is off screen: a panel scrolled out of
 * view then costs nothing per tick, and catches up the moment it is visible again.
 */
export function frozenWhileHidden(isVisible: () => boolean): { readonly latest: SnapshotMsg | null; readonly version: number } {
  let latest: SnapshotMsg | null = null;
  let version = -1;
  const snap = $derived.by(() => {
    if (isVisible() || version < 0) {
      latest = live.latest;
      version = live.version;
    }
    return { latest, version };
  });
  return {
    get latest() {
      return snap.latest;
    },
    get version() {
      return snap.version;
    },
  };
}

declare global {
  interface Window {
    __perfpulse?: { live: LiveStore };
  }
}
if (typeof window !== "undefined") window.__perfpulse = { live };
