"""``get_metrics(..., compare=...)``: the same §3 keys over a comparison range, and deltas.

Both ranges are ordinary ``get_metrics`` requests, each computed and cached under its own key,
then combined here: a comparison never needs a statement or a cache entry of its own, and a
dashboard that shows "this month" and "last month" side by side shares their cached values.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from dashquery.catalog import METRIC_KEYS
from dashquery.errors import InvalidQuery
from dashquery.read.request import MetricsRequest
from dashquery.result import DashboardMetrics, MetricValue

COMPARE_MODES = ("previous_period", "previous_year")


def parse_compare(compare: object) -> str | None:
    if compare is None:
        return None
    if not isinstance(compare, str) or compare not in COMPARE_MODES:
        raise InvalidQuery(f"compare={compare!r} must be None or one of {', '.join(COMPARE_MODES)}")
    return compare


def _year_earlier(day: dt.date) -> dt.date:
    # Feb 29 has no counterpart a year earlier; Feb 28 is the same "end of February".
    if day.month == 2 and day.day == 29:
        day = day.replace(day=28)
    return day.replace(year=day.year - 1)


def comparison_request(request: MetricsRequest, compare: str) -> MetricsRequest:
    """The range ``request`` is compared with.

    ``previous_period``: as many days, ending the day before ``date_from``.
    ``previous_year``: the same dates one year earlier (Feb 29 becomes Feb 28), so its length
    can differ by a leap day. Built directly, not through ``MetricsRequest.parse``: such a
    range may be 3,661 days long, and refusing it would only surprise the caller.
    """
    try:
        if compare == "previous_period":
            date_to = request.date_from - dt.timedelta(days=1)
            date_from = date_to - dt.timedelta(days=request.days - 1)
        else:
            date_from, date_to = _year_earlier(request.date_from), _year_earlier(request.date_to)
    except (OverflowError, ValueError):
        raise InvalidQuery(
            f"compare={compare!r} reaches before year 1 from date_from={request.date_from}"
        ) from None
    return MetricsRequest(request.organization_id, date_from, date_to)


def _difference(current: MetricValue, previous: MetricValue) -> MetricValue:
    if current is None or previous is None:
        return None
    if isinstance(current, dict) and isinstance(previous, dict):
        return {key: current[key] - previous[key] for key in current}
    assert not isinstance(current, dict) and not isinstance(previous, dict)
    if isinstance(current, int) and isinstance(previous, int):
        return current - previous  # counts and cent sums: exact
    # Cached and computed values are the same Decimals (contract §4), so the delta is exact
    # and the same on both paths. Subtraction is exact given the digits: the default 28 could
    # round a difference of two long averages.
    with decimal.localcontext(decimal.Context(prec=decimal.MAX_PREC)):
        return Decimal(current) - Decimal(previous)


def deltas(current: DashboardMetrics, previous: DashboardMetrics) -> dict[str, MetricValue]:
    """current - previous for every numeric key (per value for breakdowns): an int for
    counts and cent sums, an exact Decimal for the other numbers, None when either side is
    None.

    The current-state keys are snapshots of now, the same in both results: their delta is 0.
    """
    return {key: _difference(current[key], previous[key]) for key in METRIC_KEYS}


@dataclass(frozen=True)
class ComparedMetrics(DashboardMetrics):
    """A ``DashboardMetrics`` (the requested range) with a comparison range and the deltas.

    A subclass, so every caller of ``get_metrics`` keeps working; ``to_dict()`` is §4 plus
    one key, ``comparison``: ``compare`` (the mode), the comparison range's own ``to_dict()``
    (§3 keys, its date_from/date_to, source, freshness…) and ``deltas``.
    """

    compare: str = "previous_period"
    comparison: DashboardMetrics | None = None
    deltas: Mapping[str, MetricValue] = field(default_factory=dict)

    @classmethod
    def combine(
        cls, current: DashboardMetrics, previous: DashboardMetrics, compare: str
    ) -> ComparedMetrics:
        base = {f.name: getattr(current, f.name) for f in fields(DashboardMetrics)}
        return cls(**base, compare=compare, comparison=previous, deltas=deltas(current, previous))

    def to_dict(self) -> dict[str, Any]:
        result = super().to_dict()
        assert self.comparison is not None
        previous = self.comparison.to_dict()
        result["comparison"] = {
            "compare": self.compare,
            **previous,
            "deltas": {key: _json(result[key], previous[key]) for key in METRIC_KEYS},
        }
        return result


def _json(current: Any, previous: Any) -> Any:
    """A JSON delta is the difference of the two JSON values shown beside it (floats for the
    numbers, as before), so a reader can check it against them; ``deltas`` is exact."""
    if current is None or previous is None:
        return None
    if isinstance(current, dict):
        return {key: current[key] - previous[key] for key in current}
    return current - previous
