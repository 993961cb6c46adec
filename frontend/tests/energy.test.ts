import { describe, expect, it } from "vitest";
import { energyUnavailable } from "../src/lib/energy";

// The energy collector's data as read on a VM whose only RAPL domain (psys) opens and counts 0.
const FROZEN = {
  source: "perf",
  domains: {
    psys: {
      joules_total: 0,
      watts: null,
      frozen: true,
      reason: "counter has not advanced in 6 s: RAPL virtualised or unsupported domain",
    },
  },
  packages: { platform: { psys: { joules_total: 0, watts: null, frozen: true } } },
};

describe("energyUnavailable", () => {
  it("gives the reason when every domain is frozen", () => {
    expect(energyUnavailable(FROZEN)).toBe("psys: counter has not advanced in 6 s: RAPL virtualised or unsupported domain");
  });
  it("stays quiet while one domain still counts, or before the collector has decided", () => {
    const mixed = {
      domains: { package: { joules_total: 40, watts: 12.5, frozen: false }, psys: FROZEN.domains.psys },
    };
    expect(energyUnavailable(mixed)).toBeNull();
    expect(energyUnavailable({ domains: { psys: { joules_total: 0, watts: null, frozen: false } } })).toBeNull();
  });
  it("stays quiet on data without domains", () => {
    expect(energyUnavailable({})).toBeNull();
    expect(energyUnavailable({ domains: {} })).toBeNull();
  });
});
