import { describe, expect, it } from "vitest";
import { KeptValues } from "../src/lib/kept";

const NO_PMU = { cycles: { reason: "no hardware PMU" } };

interface Tick {
  seq: number;
  collectors: {
    perf_events: {
      data: Record<string, unknown>;
      kept?: Record<string, number>;
      patch?: Record<string, { base: number; drop: string[] }>;
    };
  };
}

function tick(seq: number, data: Record<string, unknown>, kept?: Record<string, number>): Tick {
  return { seq, collectors: { perf_events: { data: { events: { "task-clock": seq }, ...data }, ...(kept ? { kept } : {}) } } };
}

describe("KeptValues", () => {
  it("puts a kept value back from the tick that carried it", () => {
    const k = new KeptValues();
    k.reset({ perf_events: ["unsupported"] });
    expect(k.fill(tick(1, { unsupported: NO_PMU }))).toBe(true);
    const lean = tick(2, {}, { unsupported: 1 });
    expect(k.fill(lean)).toBe(true);
    expect(lean.collectors.perf_events.data).toEqual({ events: { "task-clock": 2 }, unsupported: NO_PMU });
    // A change arrives in full and is what later ticks get back.
    const changed = { cycles: { reason: "counter in use" } };
    expect(k.fill(tick(3, { unsupported: changed }))).toBe(true);
    const later = tick(4, {}, { unsupported: 3 });
    expect(k.fill(later)).toBe(true);
    expect(later.collectors.perf_events.data.unsupported).toBe(changed);
  });

  it("says so when the value held is older than the one referred to, and keeps the old one meanwhile", () => {
    const k = new KeptValues();
    k.reset({ perf_events: ["unsupported"] });
    k.fill(tick(1, { unsupported: NO_PMU }));
    // Tick 2, which carried a change, never arrived (the client was too slow).
    const lean = tick(3, {}, { unsupported: 2 });
    expect(k.fill(lean)).toBe(false);
    expect(lean.collectors.perf_events.data.unsupported).toBe(NO_PMU);
    // Nothing held at all (a new connection without backfill getting a lean tick): also not whole.
    k.reset({ perf_events: ["unsupported"] });
    const bare = tick(4, {}, { unsupported: 2 });
    expect(k.fill(bare)).toBe(false);
    expect("unsupported" in bare.collectors.perf_events.data).toBe(false);
  });

  it("forgets a key the collector stopped reporting, and leaves other keys and collectors alone", () => {
    const k = new KeptValues();
    k.reset({ perf_events: ["unsupported"] });
    k.fill(tick(1, { unsupported: NO_PMU }));
    k.fill(tick(2, {}));
    expect(k.fill(tick(3, {}, { unsupported: 1 }))).toBe(false);
    const other = { seq: 5, collectors: { cpu: { data: { kept: 1 }, kept: { busy: 1 } } } };
    expect(k.fill(other)).toBe(true);
    expect(other.collectors.cpu.data).toEqual({ kept: 1 });
  });

  it("applies a patch to the value of the tick before, and says so when that was not the tick it holds", () => {
    const k = new KeptValues();
    k.reset({ perf_events: ["cmdlines"] });
    k.fill(tick(1, { cmdlines: { "1": "/sbin/init", "42": "python3 worker.py", "7": "sshd" } }));
    const p = tick(2, { cmdlines: { "99": "chromium --type=renderer", "7": "sshd: admin" } });
    p.collectors.perf_events.patch = { cmdlines: { base: 1, drop: ["42"] } };
    expect(k.fill(p)).toBe(true);
    expect(p.collectors.perf_events.data.cmdlines).toEqual({ "1": "/sbin/init", "7": "sshd: admin", "99": "chromium --type=renderer" });
    // Unchanged at tick 3 (kept since 2), then a patch on tick 3.
    const same = tick(3, {}, { cmdlines: 2 });
    expect(k.fill(same)).toBe(true);
    expect(same.collectors.perf_events.data.cmdlines).toEqual(p.collectors.perf_events.data.cmdlines);
    const p4 = tick(4, { cmdlines: {} });
    p4.collectors.perf_events.patch = { cmdlines: { base: 3, drop: ["99"] } };
    expect(k.fill(p4)).toBe(true);
    expect(p4.collectors.perf_events.data.cmdlines).toEqual({ "1": "/sbin/init", "7": "sshd: admin" });
    // Tick 5 was missed: a patch on 5 is applied as well as it can be, and reported.
    const p6 = tick(6, { cmdlines: { "5": "bash" } });
    p6.collectors.perf_events.patch = { cmdlines: { base: 5, drop: [] } };
    expect(k.fill(p6)).toBe(false);
    expect(p6.collectors.perf_events.data.cmdlines).toEqual({ "1": "/sbin/init", "7": "sshd: admin", "5": "bash" });
    // ... and the value stays suspect until a whole one comes, which puts things right.
    expect(k.fill(tick(7, {}, { cmdlines: 6 }))).toBe(false);
    expect(k.fill(tick(8, { cmdlines: { "1": "/sbin/init" } }))).toBe(true);
    expect(k.fill(tick(9, {}, { cmdlines: 8 }))).toBe(true);
  });
});
