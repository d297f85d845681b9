"""What the benchmark measures: its options, the read paths, and the date ranges it reads."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

REFRESH_SELECTORS = ("tag:15min", "tag:5min")
PATHS = ("naive", "hybrid", "cached")  # the read paths, slowest first
SCENARIOS = ("read", "capture")  # read: the read paths; capture: write overhead and refresh


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """What to measure and how much; ``volume`` only labels the report (and its targets)."""

    volume: str = "existing"
    samples: int = 60
    clients: int = 50
    seconds: float = 10.0
    seed: int = 0
    orgs: int | None = None
    refresh_selectors: tuple[str, ...] = REFRESH_SELECTORS
    progress: bool = True
    # The capture scenario: single-row transactions per mode and operation, rows per bulk
    # load (and in the backfill), bulk loads per mode, single-row refreshes.
    single_rows: int = 300
    bulk_rows: int = 100_000
    bulk_repeats: int = 2
    single_repeats: int = 3


@dataclass(frozen=True)
class BenchRange:
    label: str
    date_from: dt.date
    date_to: dt.date

    def to_dict(self) -> dict[str, Any]:
        days = (self.date_to - self.date_from).days + 1
        return {
            "label": self.label,
            "from": str(self.date_from),
            "to": str(self.date_to),
            "days": days,
        }


def bench_ranges(today: dt.date) -> list[BenchRange]:
    """1 to 730 days ending today, and 90 days a year back (wholly materialized)."""
    ranges = [
        BenchRange(f"{n}d", today - dt.timedelta(days=n - 1), today)
        for n in (1, 7, 30, 90, 365, 730)
    ]
    past_end = today - dt.timedelta(days=365)
    return [*ranges, BenchRange("90d a year ago", past_end - dt.timedelta(days=89), past_end)]


def common_ranges(today: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """The seeds' dashboard presets, in business days."""
    return {
        "today": (today, today),
        "this week": (today - dt.timedelta(days=today.weekday()), today),
        "this month": (today.replace(day=1), today),
        "last 30 days": (today - dt.timedelta(days=29), today),
    }
