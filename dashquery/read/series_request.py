"""What a series is: the request (metric, grain, range), the periods of a range and the
``Series`` value with its cache document form. Reading one is ``dashquery.read.series``.

Only additive metrics qualify (``SERIES_METRICS``): a ratio or ``unique_customers`` per
period would not sum to the range's value. Periods are whole calendar periods named by their
true start (weeks start on Monday, months on the 1st).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from dashquery.catalog import DAILY_BLOCKS, METRIC_KINDS, DailyBlock
from dashquery.errors import InvalidQuery
from dashquery.read.request import MetricsRequest
from dashquery.result import BlockFreshness, Source, exact_decimal, exact_json

GRAINS = ("day", "week", "month")
# Additive §3 metrics and the daily block holding each one's column (same name).
SERIES_METRICS: dict[str, DailyBlock] = {
    metric: block
    for block in DAILY_BLOCKS
    for metric in block.columns
    if metric in (
        "revenue_cents", "orders_count", "new_opportunities", "weighted_pipeline_cents",
        "jobs_completed", "labor_hours", "warranty_claims", "kwh_deployed",
    )
}  # fmt: skip
SeriesValue = int | Decimal


def period_starts(date_from: dt.date, date_to: dt.date, grain: str) -> Iterator[dt.date]:
    """The true start of every period overlapping [date_from, date_to], in order; the same
    starts as PostgreSQL's ``date_trunc`` (ISO weeks start on Monday)."""
    start = {
        "day": date_from,
        "week": date_from - dt.timedelta(days=date_from.weekday()),
        "month": date_from.replace(day=1),
    }[grain]
    while start <= date_to:
        yield start
        try:
            if grain == "month":
                start = (start + dt.timedelta(days=31)).replace(day=1)
            else:
                start += dt.timedelta(days=1 if grain == "day" else 7)
        except OverflowError:  # the period holding date.max was the last one
            return


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """A validated series request; the range rules are ``MetricsRequest``'s."""

    organization_id: uuid.UUID
    metric: str
    grain: str
    date_from: dt.date
    date_to: dt.date

    @classmethod
    def parse(
        cls,
        organization_id: object,
        metric: object,
        date_from: object,
        date_to: object,
        grain: object,
    ) -> SeriesRequest:
        # isinstance first: an unhashable argument must be InvalidQuery, not TypeError
        if not isinstance(metric, str) or metric not in SERIES_METRICS:
            raise InvalidQuery(
                f"metric={metric!r} has no series; choose one of {', '.join(SERIES_METRICS)}"
            )
        if not isinstance(grain, str) or grain not in GRAINS:
            raise InvalidQuery(f"grain={grain!r} must be one of {', '.join(GRAINS)}")
        base = MetricsRequest.parse(organization_id, date_from, date_to)
        return cls(base.organization_id, metric, grain, base.date_from, base.date_to)


@dataclass(frozen=True)
class Series:
    """One metric per period: ``points`` holds (period_start, value) for every period.

    Values are ints for counts and cent sums, ``Decimal`` for numeric sums, whether computed
    or read from the cache (``to_document``/``from_document``, as with ``DashboardMetrics``).
    """

    organization_id: uuid.UUID
    metric: str
    grain: str
    date_from: dt.date
    date_to: dt.date
    timezone: str
    points: list[tuple[dt.date, SeriesValue]]
    source: Source
    generated_at: dt.datetime
    freshness: Mapping[str, BlockFreshness]

    @property
    def request(self) -> SeriesRequest:
        return SeriesRequest(
            self.organization_id, self.metric, self.grain, self.date_from, self.date_to
        )

    def with_source(self, source: Source) -> Series:
        return replace(self, source=source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": str(self.organization_id),
            "metric": self.metric,
            "grain": self.grain,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "timezone": self.timezone,
            "points": [
                {"period_start": day.isoformat(), "value": _json(v)} for day, v in self.points
            ],
            "generated_at": self.generated_at.astimezone(dt.UTC).isoformat(),
            "source": self.source,
            "freshness": {block: f.to_dict() for block, f in self.freshness.items()},
        }

    def to_document(self) -> dict[str, Any]:
        """``to_dict()`` with Decimal values as exact strings: the cache's form."""
        document = self.to_dict()
        document["points"] = [
            {"period_start": day.isoformat(), "value": exact_json(v)} for day, v in self.points
        ]
        return document

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Series:
        """Rebuild from ``to_document()``; raises ``ValueError``/``KeyError``/``TypeError``/
        ``ArithmeticError`` on anything else, including points that are not exactly the
        range's periods."""
        metric, grain = data["metric"], data["grain"]
        if metric not in SERIES_METRICS or grain not in GRAINS:
            raise ValueError(f"unknown metric or grain: {metric!r}, {grain!r}")
        date_from = dt.date.fromisoformat(data["date_from"])
        date_to = dt.date.fromisoformat(data["date_to"])
        points = [
            (dt.date.fromisoformat(p["period_start"]), _value(metric, p["value"]))
            for p in data["points"]
        ]
        if [day for day, _ in points] != list(period_starts(date_from, date_to, grain)):
            raise ValueError("points do not cover the range's periods")
        return cls(
            organization_id=uuid.UUID(data["organization_id"]),
            metric=metric,
            grain=grain,
            date_from=date_from,
            date_to=date_to,
            timezone=str(data["timezone"]),
            points=points,
            source=data["source"],
            generated_at=dt.datetime.fromisoformat(data["generated_at"]),
            freshness={b: BlockFreshness.from_dict(f) for b, f in data["freshness"].items()},
        )


def _json(value: SeriesValue) -> int | float:
    return float(value) if isinstance(value, Decimal) else value


def _value(metric: str, value: Any) -> SeriesValue:
    if METRIC_KINDS[metric] != "int":
        return exact_decimal(metric, value)
    if type(value) is not int:
        raise TypeError(f"{metric}: expected an int, got {value!r}")
    return value
