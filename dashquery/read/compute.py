"""Computing a ``DashboardMetrics`` in PostgreSQL: one pooled round trip per request."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from dashquery.catalog import (
    BLOCK_VIEWS,
    BREAKDOWNS,
    CURRENT_STATE,
    METRIC_KEYS,
    METRIC_KINDS,
    RELATIONS,
)
from dashquery.config import Settings
from dashquery.read.binding import RangeRequest, arguments, native
from dashquery.read.discovery import Deployment, check_statement, deployment_check, discover
from dashquery.read.request import MetricsRequest
from dashquery.read.runner import Runner
from dashquery.read.statement import HybridStatements
from dashquery.result import BlockFreshness, DashboardMetrics, MetricValue

log = logging.getLogger(__name__)

# The daily views of each §4 block: their changed days are the block's changed_days_live.
BLOCK_DAILY_VIEWS: dict[str, tuple[str, ...]] = {
    block: tuple(r.view for r in RELATIONS if r.name == block) for block in BLOCK_VIEWS
}


class Computer(Runner):
    """Runs the hybrid statement on a pool; knows which materialized views exist.

    Which views exist is looked up once and again every ``rediscover_seconds`` or after an
    error naming a missing relation, so a fresh deploy or a dropped view degrades to live
    reads instead of failing. ``run`` (``Runner``) lets no psycopg error out.
    """

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        *,
        retries: int = 2,
        rediscover_seconds: float = 60.0,
    ) -> None:
        super().__init__(settings, pool, retries=retries)
        self.rediscover_seconds = rediscover_seconds
        self._lock = threading.Lock()
        self._deployment: Deployment | None = None
        self._statements: HybridStatements | None = None
        # The statement rendered once: composing its ~800 parts on every call cost ~1 ms of
        # Python per read (measured by the benchmark), as much as PostgreSQL's own work.
        self._rendered = b""
        self._discovered_at = 0.0

    def statements(self, conn: psycopg.Connection[Any]) -> tuple[HybridStatements, bytes]:
        """The statement builder for the views that exist now, and the rendered metrics SQL."""
        with self._lock:
            stale = time.monotonic() - self._discovered_at > self.rediscover_seconds
            if self._statements is None or stale:
                self._deployment = discover(self.settings, conn)
                usable = self._deployment.available_views
                changes = self._deployment.has_changes
                if (
                    self._statements is None
                    or usable != self._statements.available_views
                    or changes != self._statements.changes
                ):
                    self._statements = HybridStatements(self.settings, usable, changes=changes)
                    self._rendered = native(self._statements.metrics().as_bytes(conn))
                self._discovered_at = time.monotonic()
            return self._statements, self._rendered

    def identity(self) -> str:
        """The database identity of contract §4 for the cache namespace: the cluster's system
        identifier ('' when pg_control_system() is not permitted), current_database(), the
        deployment id and the fingerprint of every view definition. Known from discovery
        and kept current by every metrics statement; looks the views up first if needed
        (then it may raise ``Unavailable`` or ``Misconfigured``)."""
        with self._lock:
            if self._deployment is not None:
                return self._deployment.identity
        self.run(self.statements)
        with self._lock:
            assert self._deployment is not None
            return self._deployment.identity

    def forget_views(self) -> None:
        with self._lock:
            self._discovered_at = 0.0

    def observe(self, watermarks: Mapping[str, Any] | None) -> None:
        """A statement's deployment check: raise on settings drift; a new fingerprint or
        deployment id updates the identity at once and the views are looked up again."""
        check = deployment_check(watermarks)
        check_statement(check)
        if check is None:
            return
        with self._lock:
            if self._deployment is None:
                return
            seen = self._deployment.observed(check)
            if seen.identity != self._deployment.identity:
                self._deployment = seen
                self._discovered_at = 0.0

    def compute(self, request: MetricsRequest) -> DashboardMetrics:
        def read(conn: psycopg.Connection[Any]) -> DashboardMetrics:
            statements, statement = self.statements(conn)
            return self._result(request, statements, self.fetch(conn, statement, request))

        return self.run(read)

    def fetch(
        self,
        conn: psycopg.Connection[Any],
        statement: bytes,
        request: RangeRequest,
    ) -> Mapping[str, Any]:
        """Run one hybrid statement (metrics or series, prepared, its text from ``native``)
        and return its one row, after ``observe`` has seen its deployment check: every hybrid
        read goes through here, so any of them notices a new fingerprint or settings drift."""
        cursor = psycopg.RawCursor(conn, row_factory=dict_row)
        row = cursor.execute(statement, arguments(request), prepare=True).fetchone()
        assert row is not None  # aggregates always yield one row
        self.observe(row["watermarks"])
        return row

    def _result(
        self, request: MetricsRequest, statements: HybridStatements, row: Mapping[str, Any]
    ) -> DashboardMetrics:
        metrics: dict[str, MetricValue] = {}
        for key in METRIC_KEYS:
            kind = METRIC_KINDS[key]
            if kind == "breakdown":
                breakdown = BREAKDOWNS[key]
                metrics[key] = {
                    v: int(row[c]) for v, c in zip(breakdown.values, breakdown.columns, strict=True)
                }
            elif kind == "int":
                metrics[key] = int(row[key])
            else:
                value = row[key]
                metrics[key] = None if value is None else Decimal(value)
        return DashboardMetrics(
            organization_id=request.organization_id,
            date_from=request.date_from,
            date_to=request.date_to,
            timezone=self.settings.timezone,
            generated_at=dt.datetime.now(dt.UTC),
            source="computed",
            metrics=metrics,
            freshness=self._freshness(request, statements, row),
        )

    def _freshness(
        self, request: MetricsRequest, statements: HybridStatements, row: Mapping[str, Any]
    ) -> dict[str, BlockFreshness]:
        watermarks: Mapping[str, Mapping[str, Any]] = row["watermarks"] or {}
        available = statements.available_views
        result = {
            block: range_freshness(
                views,
                available,
                watermarks,
                request.date_from,
                request.date_to,
                changed=changed_days_live(BLOCK_DAILY_VIEWS[block], row),
            )
            for block, views in BLOCK_VIEWS.items()
            if block != CURRENT_STATE.name
        }
        # The snapshot is not a range: it is either the view's (with its watermark) or live.
        today = dt.datetime.now(self.settings.zone).date()
        snapshot = range_freshness(
            BLOCK_VIEWS[CURRENT_STATE.name], available, watermarks, today, today
        )
        is_live = bool(row["current_state_is_live"])
        # Read live because it changed since the refresh: not a reason the view can't be used.
        changed = is_live and not snapshot.live_reason and bool(row["current_state_changed"])
        result[CURRENT_STATE.name] = BlockFreshness(
            watermark=None if is_live else snapshot.watermark,
            first_live_day=today if is_live else None,
            live_reason=snapshot.live_reason
            or ("no snapshot row yet" if is_live and not changed else None),
            changed_days_live=int(changed),
        )
        return result


def range_freshness(
    views: Sequence[str],
    available: frozenset[str],
    watermarks: Mapping[str, Mapping[str, Any]],
    date_from: dt.date,
    date_to: dt.date,
    *,
    changed: int = 0,
) -> BlockFreshness:
    """A block's §4 freshness for a range: the oldest watermark of its views and the first
    day read live, or the whole range live and why when a view cannot be used.

    Also raises ``Misconfigured`` when the statement found views built for other settings:
    every hybrid statement (metrics and series) reaches its freshness through here.
    ``changed`` is the number of days read live because they changed (``changed_days_live``)."""
    check_statement(deployment_check(watermarks))
    reason = next((r for view in views if (r := live_reason(view, available, watermarks))), None)
    if reason:
        return BlockFreshness(watermark=None, first_live_day=date_from, live_reason=reason)
    marks = [watermarks[view] for view in views]
    split = min(dt.date.fromisoformat(mark["split_day"]) for mark in marks)
    first_live = max(split, date_from)
    return BlockFreshness(
        watermark=min(dt.datetime.fromisoformat(mark["watermark"]) for mark in marks),
        first_live_day=first_live if first_live <= date_to else None,
        live_reason=None,
        changed_days_live=changed,
    )


def changed_days_live(daily_views: Sequence[str], row: Mapping[str, Any]) -> int:
    """The distinct days of these daily views the statement read live because they changed
    (its ``changed_days``: only days in the range and before the view's split)."""
    changed: Mapping[str, Sequence[str]] = row.get("changed_days") or {}
    return len({day for view in daily_views for day in changed.get(view, ())})


def live_reason(
    view: str, available: frozenset[str], watermarks: Mapping[str, Mapping[str, Any]]
) -> str | None:
    if view not in available:
        return f"{view} is missing"
    mark = watermarks.get(view)
    if mark is None:
        return f"{view} was never refreshed"
    if mark["failed"]:
        return f"the last refresh of {view} failed"
    if not mark.get("current", True):
        upstream = ", ".join(mark.get("upstream_views") or ()) or "its daily views"
        return f"{view} was built from an older definition of {upstream}"
    if not mark.get("captured", True):
        return f"{view} was refreshed before change capture started: its next refresh fixes it"
    return None
