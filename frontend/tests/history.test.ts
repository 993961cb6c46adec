import { describe, expect, it } from "vitest";
import { readState, resolveRange, writeState } from "../src/lib/history";

describe("history state in the URL", () => {
  it("round-trips every field, series keys with quotes and commas included", () => {
    const s = {
      range: "custom",
      from: 1000,
      to: 4600,
      series: ['disk_read_bytes_per_second{device="sda"}', 'pressure_avg10_percent{resource="io",scope="some"}'],
      host: "db1",
      compare: "custom" as const,
      from2: 100,
    };
    expect(readState(new URLSearchParams(writeState(s).toString()))).toEqual(s);
  });
  it("falls back to one hour for a preset it does not know", () => {
    const s = readState(new URLSearchParams("range=bogus&compare=nonsense&from=abc"));
    expect(s.range).toBe("1h");
    expect(s.compare).toBe("");
    expect(s.from).toBeNull();
  });
  it("resolves presets against now and keeps a valid custom range", () => {
    expect(resolveRange(readState(new URLSearchParams("range=24h")), 100_000)).toEqual([13_600, 100_000]);
    expect(resolveRange(readState(new URLSearchParams("range=custom&from=10&to=20")), 100_000)).toEqual([10, 20]);
    // an inverted custom range is not trusted: the default hour instead
    expect(resolveRange(readState(new URLSearchParams("range=custom&from=20&to=10")), 100_000)).toEqual([96_400, 100_000]);
  });
});
