/**
 * Why the energy collector, though running, has no power figure to show. On many virtual machines the
 * kernel offers a RAPL domain (often only `psys`) that opens fine and never counts: the collector marks
 * such a domain `frozen` with a reason once it has stood still for a while, and reports no watts for it.
 */

interface Domain {
  watts?: number | null;
  frozen?: boolean;
  reason?: string;
}

/**
 * The reason when every energy domain is frozen (nothing to show), else null. `data` is the energy
 * collector's data for one tick: `{source, domains: {name: {joules_total, watts, frozen, reason?}}, ...}`.
 */
export function energyUnavailable(data: Record<string, unknown>): string | null {
  const domains = data.domains as Record<string, Domain> | undefined;
  if (!domains || typeof domains !== "object") return null;
  const entries = Object.entries(domains);
  if (entries.length === 0 || !entries.every(([, d]) => d && d.frozen === true)) return null;
  const names = entries.map(([name]) => name).join(", ");
  const reason = entries.find(([, d]) => d.reason)?.[1].reason ?? "the counter does not advance";
  return `${names}: ${reason}`;
}
