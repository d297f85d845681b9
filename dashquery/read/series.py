"""Chart data: one additive metric per period (day, ISO week, month) over a range.

A series reads the same hybrid rows as ``get_metrics`` (``HybridStatements.daily_rows``:
materialized days before day(watermark), live days from it on) and sums them per period, so
the points add up to ``get_metrics``' value exactly. Only additive metrics qualify: a ratio
or ``unique_customers`` per period would not sum to the range's value.

Periods are whole calendar periods named by their true start (weeks start on Monday, months
on the 1st), but only days inside [date_from, date_to] are summed: the first point's
``period_start`` may lie before ``date_from``, and the first and last points may cover part
of their period. Every period of the range has a point, 0 when nothing happened.

Cached under ``{namespace}:s:{org}:{metric}:{grain}:{from}:{to}`` with the same generation
counters, checksum and circuit breaker as ``MetricsCache`` (whose Redis client it borrows), so
``invalidate_org``/``invalidate_all`` drop series too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dashquery.cache.values import MetricsCache
from dashquery.catalog import METRIC_KINDS
from dashquery.errors import InvalidQuery
from dashquery.read.compute import Computer, range_freshness
from dashquery.read.request import MetricsRequest
from dashquery.read.statement import (
    DAILY_BLOCKS,
    DailyBlock,
    HybridStatements,
)
from dashquery.result import BlockFreshness, Source, exact_decimal, exact_json

SERIES_TTL_SECONDS = 15 * 60  # the seeds' TTL for charts
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
# Not the metrics' "dq2": a series payload has another shape. dqs2: exact decimal strings.
_FORMAT = b"dqs2"

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


class SeriesStatements:
    """The series statements of one ``HybridStatements`` (one set of available views)."""

    def __init__(self, hybrid: HybridStatements) -> None:
        self.hybrid = hybrid
        self._built: dict[tuple[str, str], sql.Composed] = {}

    def statement(self, metric: str, grain: str) -> sql.Composed:
        """One row: the periods with rows, their sums, and the watermarks.

        The grain is a literal (so each statement keeps one generic plan), taken only from
        the ``GRAINS`` whitelist. ``business_day::timestamp`` keeps ``date_trunc`` off
        ``timestamptz``, whose result would depend on the session's TimeZone.
        """
        if metric not in SERIES_METRICS or grain not in GRAINS:
            raise InvalidQuery(f"no series statement for metric={metric!r}, grain={grain!r}")
        built = self._built.get((metric, grain))
        if built is None:
            built = self._built[(metric, grain)] = sql.SQL(
                "with {watermarks}, periods as ("
                "select date_trunc({grain}, business_day::timestamp)::date as period_start,"
                " sum({column}) as value from ({rows}) as days group by 1)"
                " select array_agg(period_start order by period_start) as period_starts,"
                " array_agg(value order by period_start) as period_values, {freshness}"
                " from periods"
            ).format(
                watermarks=self.hybrid.watermarks_cte(),
                grain=sql.Literal(grain),
                column=sql.Identifier(metric),
                rows=self.hybrid.daily_rows(SERIES_METRICS[metric]),
                freshness=self.hybrid.freshness_column(),
            )
        return built


class SeriesCache:
    """Series in Redis through a ``MetricsCache``'s client, generations and breaker."""

    def __init__(self, cache: MetricsCache, *, ttl_seconds: float = SERIES_TTL_SECONDS) -> None:
        self.cache = cache
        self.ttl_seconds = ttl_seconds

    def key(self, r: SeriesRequest) -> str:
        return (
            f"{self.cache.namespace}:s:{r.organization_id}:{r.metric}:{r.grain}"
            f":{r.date_from}:{r.date_to}"
        )

    def lookup(self, request: SeriesRequest) -> tuple[Series | None, tuple[bytes, bytes] | None]:
        """The valid cached series (or None) and the generations to store a new one under;
        generations are None when Redis is unavailable (then nothing is stored)."""

        def decode(document: Any) -> Series:
            series = Series.from_document(document)
            if series.request != request or series.timezone != self.cache.timezone:
                raise ValueError("value belongs to another request")
            return series.with_source("cache")

        series, generations, _ = self.cache.read(
            self.key(request), request.organization_id, _FORMAT, decode
        )
        return series, generations

    def store(
        self, request: SeriesRequest, series: Series, generations: tuple[bytes, bytes]
    ) -> None:
        self.cache.write(
            self.key(request), _FORMAT, series.to_document(), generations, self.ttl_seconds
        )


class SeriesReader:
    """Cache first, then one hybrid statement on the ``Computer``'s pool and views."""

    def __init__(self, computer: Computer, cache: MetricsCache | None) -> None:
        self.computer = computer
        self.cache = SeriesCache(cache) if cache is not None else None
        self._statements: SeriesStatements | None = None

    def get(self, request: SeriesRequest) -> Series:
        series, generations = self.cache.lookup(request) if self.cache is not None else (None, None)
        if series is not None:
            return series
        series = self.compute(request)
        if self.cache is not None and generations is not None:
            self.cache.store(request, series, generations)
        return series

    def compute(self, request: SeriesRequest) -> Series:
        params = {
            "organization_id": request.organization_id,
            "date_from": request.date_from,
            "date_to": request.date_to,
        }

        def read(conn: psycopg.Connection[Any]) -> Series:
            hybrid, _ = self.computer.statements(conn)
            if self._statements is None or self._statements.hybrid is not hybrid:
                self._statements = SeriesStatements(hybrid)
            statement = self._statements.statement(request.metric, request.grain)
            cursor = conn.cursor(row_factory=dict_row)
            row = cursor.execute(statement, params, prepare=True).fetchone()
            assert row is not None  # aggregates always yield one row
            return self._result(request, hybrid, row)

        return self.computer.run(read)

    def _result(
        self, request: SeriesRequest, hybrid: HybridStatements, row: Mapping[str, Any]
    ) -> Series:
        as_value = int if METRIC_KINDS[request.metric] == "int" else Decimal
        found = dict(zip(row["period_starts"] or [], row["period_values"] or [], strict=True))
        points = [
            (start, as_value(found.get(start, 0)))
            for start in period_starts(request.date_from, request.date_to, request.grain)
        ]
        return Series(
            organization_id=request.organization_id,
            metric=request.metric,
            grain=request.grain,
            date_from=request.date_from,
            date_to=request.date_to,
            timezone=self.computer.settings.timezone,
            points=points,
            source="computed",
            generated_at=dt.datetime.now(dt.UTC),
            freshness=_freshness(request, hybrid, SERIES_METRICS[request.metric], row),
        )


def _freshness(
    request: SeriesRequest, hybrid: HybridStatements, block: DailyBlock, row: Mapping[str, Any]
) -> dict[str, BlockFreshness]:
    """Only the block the series reads, with ``get_metrics``' meaning of each field."""
    freshness = range_freshness(
        (block.materialized_view,),
        hybrid.available_views,
        row["watermarks"] or {},
        request.date_from,
        request.date_to,
    )
    return {block.name: freshness}
