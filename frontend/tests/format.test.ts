import { describe, expect, it } from "vitest";
import {
  durationSeconds,
  formatAxis,
  formatChange,
  formatCount,
  formatDuration,
  formatHorizon,
  formatIEC,
  formatSI,
  formatUTC,
  formatValue,
  humanName,
  sig,
  splitDuration,
} from "../src/lib/format";

describe("SI prefixes for rates and physical quantities", () => {
  it("scales by 1000", () => {
    expect(formatSI(999, "B/s")).toBe("999 B/s");
    expect(formatSI(1000, "B/s")).toBe("1.00 kB/s");
    expect(formatSI(1234, "B/s")).toBe("1.23 kB/s");
    expect(formatSI(12_345_678, "B/s")).toBe("12.3 MB/s");
    expect(formatSI(2.4e9, "Hz")).toBe("2.40 GHz");
    expect(formatSI(3.2e12, "/s")).toBe("3.20 T/s");
  });
  it("rounds up across a prefix boundary instead of printing 1000 k", () => {
    expect(formatSI(999_999, "B/s")).toBe("1.00 MB/s");
    expect(formatSI(999.6, "B/s")).toBe("1.00 kB/s");
  });
  it("uses sub-unit prefixes only when asked", () => {
    expect(formatSI(0.0123, "W")).toBe("0.0123 W");
    expect(formatSI(0.0123, "W", { small: true })).toBe("12.3 mW");
    expect(formatSI(4.5e-7, "s", { small: true })).toBe("450 ns");
  });
  it("keeps the sign and zero", () => {
    expect(formatSI(-2500, "W")).toBe("-2.50 kW");
    expect(formatSI(0, "B/s")).toBe("0 B/s");
  });
  it("shows a dash for missing values, never NaN", () => {
    expect(formatSI(null, "B/s")).toBe("—");
    expect(formatSI(Number.NaN, "B/s")).toBe("—");
    expect(formatSI(Number.POSITIVE_INFINITY, "B/s")).toBe("—");
    expect(formatValue(undefined, "bytes")).toBe("—");
  });
});

describe("IEC prefixes for sizes", () => {
  it("scales by 1024", () => {
    expect(formatIEC(0)).toBe("0 B");
    expect(formatIEC(1023)).toBe("1023 B");
    expect(formatIEC(1024)).toBe("1.00 KiB");
    expect(formatIEC(1536)).toBe("1.50 KiB");
    expect(formatIEC(16 * 1024 ** 3)).toBe("16.0 GiB");
    expect(formatIEC(1.5 * 1024 ** 4)).toBe("1.50 TiB");
  });
  it("never prints 1024 of a prefix", () => {
    expect(formatIEC(1024 * 1024 - 1)).toBe("1.00 MiB");
  });
});

describe("every catalogue unit gets its unit", () => {
  const cases: [number, string, string][] = [
    [0.4567, "ratio", "45.7 %"],
    [12.34, "percent", "12.3 %"],
    [8 * 1024 ** 3, "bytes", "8.00 GiB"],
    [5_000_000, "bytes_per_second", "5.00 MB/s"],
    [0.0042, "seconds", "4.20 ms"],
    [0.25, "seconds_per_second", "250 ms/s"],
    [1500, "per_second", "1.50 k/s"],
    [42, "count", "42"],
    [3.1e9, "hertz", "3.10 GHz"],
    [54.24, "celsius", "54.2 °C"],
    [12_000, "joules", "12.0 kJ"],
    [65.4, "watts", "65.4 W"],
    [7, "furlongs_per_fortnight", "7.00 furlongs per fortnight"],
  ];
  it.each(cases)("%s %s → %s", (v, unit, want) => {
    expect(formatValue(v, unit)).toBe(want);
  });
  it("axis labels stay compact and keep the unit family", () => {
    expect(formatAxis(0.5, "ratio")).toBe("50%");
    expect(formatAxis(2048, "bytes")).toBe("2.00KiB");
    expect(formatAxis(2e6, "bytes_per_second")).toBe("2.00MB/s");
  });
});

describe("durations, counts and changes", () => {
  it("picks a readable unit", () => {
    expect(formatDuration(0)).toBe("0 s");
    expect(formatDuration(2.5)).toBe("2.50 s");
    expect(formatDuration(200)).toBe("3 min 20 s");
    expect(formatDuration(7500)).toBe("2 h 5 min");
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe("3 d 4 h");
  });
  it("counts are exact below 10 000", () => {
    expect(formatCount(9999)).toBe("9999");
    expect(formatCount(123_456)).toBe("123 k");
    expect(formatCount(2.5)).toBe("2.50");
  });
  it("percent change carries its sign", () => {
    expect(formatChange(12.345)).toBe("+12.3 %");
    expect(formatChange(-3)).toBe("−3.0 %");
    expect(formatChange(0)).toBe("±0.0 %");
    expect(formatChange(null)).toBe("—");
  });
  it("significant digits", () => {
    expect(sig(0.000123)).toBe("0.000123");
    expect(sig(1.005)).toBe("1.00");
    expect(sig(123456)).toBe("123456");
  });
});

describe("time", () => {
  it("UTC is ISO 8601 with a Z", () => {
    expect(formatUTC(0)).toBe("1970-01-01T00:00:00Z");
    expect(formatUTC(1_764_075_787.4)).toBe("2025-11-25T13:03:07Z");
  });
});

describe("labels", () => {
  it("strip the unit suffix", () => {
    expect(humanName("disk_read_bytes_per_second", "bytes_per_second")).toBe("disk read");
    expect(humanName("cpu_utilization_ratio", "ratio")).toBe("cpu utilization");
    expect(humanName("perf_instructions_total", "count")).toBe("perf instructions");
  });
});

describe("retention horizons in hours and days", () => {
  it("shows whole days as days and the rest as hours", () => {
    expect(splitDuration(48 * 3600)).toEqual({ value: "2", unit: "days" });
    expect(splitDuration(90 * 86400)).toEqual({ value: "90", unit: "days" });
    expect(splitDuration(36 * 3600)).toEqual({ value: "36", unit: "hours" });
    expect(splitDuration(3600)).toEqual({ value: "1", unit: "hours" });
    expect(splitDuration(5400)).toEqual({ value: "1.5", unit: "hours" });
  });
  it("turns typed values back into whole seconds", () => {
    expect(durationSeconds("2", "days")).toBe(172800);
    expect(durationSeconds(" 36 ", "hours")).toBe(129600);
    expect(durationSeconds("0.5", "hours")).toBe(1800);
    expect(durationSeconds("", "days")).toBeNull();
    expect(durationSeconds("two", "days")).toBeNull();
    // What a bound number input gives: a number, or null when emptied.
    expect(durationSeconds(36, "hours")).toBe(129600);
    expect(durationSeconds(null, "days")).toBeNull();
  });
  it("names a horizon in the largest whole unit", () => {
    expect(formatHorizon(3600)).toBe("1 hour");
    expect(formatHorizon(36 * 3600)).toBe("36 hours");
    expect(formatHorizon(48 * 3600)).toBe("2 days");
    expect(formatHorizon(730 * 86400)).toBe("2 years");
    expect(formatHorizon(20 * 365 * 86400)).toBe("20 years");
    expect(formatHorizon(5400)).toBe("1.5 hours");
  });
  it("round-trips every value it displays", () => {
    for (const s of [3600, 5400, 86400, 100000, 730 * 86400, 20 * 365 * 86400]) {
      const { value, unit } = splitDuration(s);
      expect(durationSeconds(value, unit)).toBe(s);
    }
  });
});
