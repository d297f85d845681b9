"""The benchmark's measuring tools: the clock, the progress bar and summary statistics."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

_PERCENTILES = {"p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - started) * 1000


def progress_bar(enabled: bool) -> Progress:
    """Progress on stderr (stdout keeps the summary); ``enabled=False`` draws nothing."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        # Redrawing takes the GIL from the threads being timed: twice a second is plenty.
        refresh_per_second=2,
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """n, min, mean, quartiles, p95, p99 and max of latencies in ms (NaN-free: n=0 is zeros)."""
    if not values:
        return {"n": 0, "min": 0.0, "mean": 0.0, **dict.fromkeys(_PERCENTILES, 0.0), "max": 0.0}
    ordered = sorted(values)
    stats: dict[str, Any] = {"n": len(ordered), "min": ordered[0]}
    stats["mean"] = sum(ordered) / len(ordered)
    stats |= {name: percentile(ordered, q) for name, q in _PERCENTILES.items()}
    stats["max"] = ordered[-1]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}


def ratios(
    slow: Mapping[str, Mapping[str, float]], fast: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float | None]]:
    """Per range, slow / fast at p50, p95 and p99 (None when fast measured 0)."""
    return {
        label: {
            q: round(slow[label][q] / fast[label][q], 2) if fast[label][q] else None
            for q in ("p50", "p95", "p99")
        }
        for label in slow
    }
