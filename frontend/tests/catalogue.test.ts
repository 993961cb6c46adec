import { describe, expect, it } from "vitest";
import { extract, type MetricSpec } from "../src/lib/catalogue";

const spec = (name: string, path: string, labels: string[] = []): MetricSpec => ({ name, path, labels, unit: "ratio", kind: "gauge", description: "" });

describe("extracting catalogue series from a collector's data", () => {
  it("binds each * to the next label and skips what is not a number", () => {
    const s = spec("disk_busy_ratio", "devices.*.busy", ["device"]);
    const data = { devices: { sda: { busy: 0.5 }, nvme0n1: { busy: null }, sdb: { busy: true } } };
    const out = new Map<string, number | null>();
    extract(s, data, out);
    expect([...out]).toEqual([
      ['disk_busy_ratio{device="sda"}', 0.5],
      ['disk_busy_ratio{device="sdb"}', 1],
    ]);
    // The same spec on the next tick: the same keys, new values (keys are reused, not stale values).
    const next = new Map<string, number | null>();
    extract(s, { devices: { sda: { busy: 0.25 } } }, next);
    expect([...next]).toEqual([['disk_busy_ratio{device="sda"}', 0.25]]);
  });
  it("handles two levels of labels and unlabelled paths", () => {
    const out = new Map<string, number | null>();
    extract(spec("cpu_mode_ratio", "cores.*.*", ["cpu", "mode"]), { cores: { "0": { user: 0.1, system: 0.2 } } }, out);
    extract(spec("cpu_busy_ratio", "busy"), { busy: 0.3 }, out);
    extract(spec("cpu_missing_ratio", "nope.deeper"), { busy: 0.3 }, out);
    expect(Object.fromEntries(out)).toEqual({
      'cpu_mode_ratio{cpu="0",mode="user"}': 0.1,
      'cpu_mode_ratio{cpu="0",mode="system"}': 0.2,
      cpu_busy_ratio: 0.3,
    });
  });
});
