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
``invalidate_org``/``invalidate_all`` drop series too. The request and the ``Series`` value
are in ``dashquery.read.series_request`` (re-exported here); this module reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from dashquery.cache.values import MetricsCache
from dashquery.catalog import METRIC_KINDS, DailyBlock
from dashquery.errors import InvalidQuery
from dashquery.read.binding import native
from dashquery.read.compute import Computer, changed_days_live, range_freshness
from dashquery.read.series_request import (
    GRAINS,
    SERIES_METRICS,
    Series,
    SeriesRequest,
    period_starts,
)
from dashquery.read.statement import HybridStatements
from dashquery.result import BlockFreshness

__all__ = [
    "GRAINS",
    "SERIES_METRICS",
    "SERIES_TTL_SECONDS",
    "Series",
    "SeriesCache",
    "SeriesReader",
    "SeriesRequest",
    "SeriesStatements",
    "period_starts",
]

SERIES_TTL_SECONDS = 15 * 60  # the seeds' TTL for charts
# Not the metrics' "dq2": a series payload has another shape. dqs2: exact decimal strings.
_FORMAT = b"dqs2"


class SeriesStatements:
    """The series statements of one ``HybridStatements`` (one set of available views)."""

    def __init__(self, hybrid: HybridStatements) -> None:
        self.hybrid = hybrid
        self._built: dict[tuple[str, str], bytes] = {}

    def statement(self, conn: psycopg.Connection[Any], metric: str, grain: str) -> bytes:
        """One row: the periods with rows, their sums, and the watermarks.

        The grain is a literal (so each statement keeps one generic plan), taken only from
        the ``GRAINS`` whitelist. ``business_day::timestamp`` keeps ``date_trunc`` off
        ``timestamptz``, whose result would depend on the session's TimeZone.
        """
        if metric not in SERIES_METRICS or grain not in GRAINS:
            raise InvalidQuery(f"no series statement for metric={metric!r}, grain={grain!r}")
        built = self._built.get((metric, grain))
        if built is None:
            composed = sql.SQL(
                "with {ctes}, periods as ("
                "select date_trunc({grain}, business_day::timestamp)::date as period_start,"
                " sum({column}) as value from ({rows}) as days group by 1)"
                " select array_agg(period_start order by period_start) as period_starts,"
                " array_agg(value order by period_start) as period_values, {freshness}"
                " from periods"
            ).format(
                ctes=sql.SQL(", ").join(self.hybrid.ctes()),
                grain=sql.Literal(grain),
                column=sql.Identifier(metric),
                rows=self.hybrid.daily_rows(SERIES_METRICS[metric]),
                freshness=self.hybrid.freshness_columns(),
            )
            built = self._built[(metric, grain)] = native(composed.as_bytes(conn))
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
        def read(conn: psycopg.Connection[Any]) -> Series:
            hybrid, _ = self.computer.statements(conn)
            if self._statements is None or self._statements.hybrid is not hybrid:
                self._statements = SeriesStatements(hybrid)
            statement = self._statements.statement(conn, request.metric, request.grain)
            # Computer.fetch: the same deployment check (identity refresh) as get_metrics
            return self._result(request, hybrid, self.computer.fetch(conn, statement, request))

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
        changed=changed_days_live((block.view,), row),
    )
    return {block.name: freshness}
