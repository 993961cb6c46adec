"""The history tiers, their retention, and which tier answers a query.

Raw samples are kept at the sampling interval for a short time; 1-minute and 1-hour rollups (min, max,
sum, count, last) are kept for months and years. A query asks for ``points`` buckets over a range; the
coarsest tier whose resolution still fits a bucket answers it, so a 30-day chart reads ~43,000 minute rows
rather than 2.6 million raw samples, while a spike survives in every tier through min and max.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_S = 86_400.0

TIERS: tuple[str, ...] = ("raw", "1m", "1h")
#: Rollup period of each tier in milliseconds (raw has none: its resolution is the sampling interval).
PERIOD_MS: dict[str, int] = {"raw": 0, "1m": MINUTE_MS, "1h": HOUR_MS}
TABLE: dict[str, str] = {"1m": "hist_1m", "1h": "hist_1h"}


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each tier keeps data, in seconds."""

    raw: float = 2 * DAY_S
    minute: float = 90 * DAY_S
    hour: float = 730 * DAY_S

    def __post_init__(self) -> None:
        for name in ("raw", "minute", "hour"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"retention for the {name} tier must be positive seconds, got {value!r}")

    def seconds(self, tier: str) -> float:
        return {"raw": self.raw, "1m": self.minute, "1h": self.hour}[tier]

    def cutoff_ms(self, tier: str, now_ms: int) -> int:
        """Data whose period ends at or before this instant is expired in ``tier``."""
        return now_ms - int(self.seconds(tier) * 1000)


def finer(tier: str) -> str | None:
    i = TIERS.index(tier)
    return TIERS[i - 1] if i > 0 else None


def choose_tier(step_ms: int, start_ms: int, now_ms: int, retention: Retention) -> str:
    """The coarsest tier whose period fits in one bucket of ``step_ms``.

    A range that begins before a tier's retention horizon moves to the next coarser tier, which still
    holds that time: a 3-day chart at 1,000 points would otherwise show two empty days of raw data.
    """
    tier = "raw"
    for candidate in ("1m", "1h"):
        if PERIOD_MS[candidate] <= step_ms:
            tier = candidate
    while tier != "1h" and start_ms < retention.cutoff_ms(tier, now_ms):
        tier = TIERS[TIERS.index(tier) + 1]
    return tier
