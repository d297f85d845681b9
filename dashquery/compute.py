"""Computing a ``DashboardMetrics`` in PostgreSQL: one pooled round trip per request."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from dashquery.config import Settings
from dashquery.contract import BLOCK_VIEWS, BREAKDOWN_VALUES, METRIC_KEYS, METRIC_KINDS
from dashquery.errors import Unavailable
from dashquery.hybrid import MATERIALIZED_VIEWS, WATERMARKS_TABLE, HybridStatements
from dashquery.request import MetricsRequest
from dashquery.result import BlockFreshness, DashboardMetrics, MetricValue

log = logging.getLogger(__name__)
T = TypeVar("T")

# Columns of a breakdown in the statement's row: <prefix>_<value>.
_BREAKDOWN_COLUMNS = {
    "opportunities_by_stage": "opportunities_stage",
    "jobs_by_status": "jobs_status",
    "claims_by_status": "claims_status",
    "claims_by_type": "claims_type",
}
_DISCOVERY = sql.SQL(
    "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    " where n.nspname = %s and ((c.relkind = 'm' and c.relispopulated) or c.relname = %s)"
)


class Computer:
    """Runs the hybrid statement on a pool; knows which materialized views exist.

    Which views exist is looked up once and again every ``rediscover_seconds`` or after an
    error naming a missing relation, so a fresh deploy or a dropped view degrades to live
    reads instead of failing.
    """

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        *,
        retries: int = 2,
        rediscover_seconds: float = 60.0,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.retries = retries
        self.rediscover_seconds = rediscover_seconds
        self._lock = threading.Lock()
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
                found = {
                    row[0]
                    for row in conn.execute(
                        _DISCOVERY, (self.settings.schema, WATERMARKS_TABLE)
                    ).fetchall()
                }
                # Without the watermarks table no materialized view can be trusted.
                usable = found & set(MATERIALIZED_VIEWS) if WATERMARKS_TABLE in found else set()
                if self._statements is None or usable != self._statements.available_views:
                    self._statements = HybridStatements(self.settings, usable)
                    self._rendered = self._statements.metrics().as_bytes(conn)
                self._discovered_at = time.monotonic()
            return self._statements, self._rendered

    def forget_views(self) -> None:
        with self._lock:
            self._discovered_at = 0.0

    def compute(self, request: MetricsRequest) -> DashboardMetrics:
        params = {
            "organization_id": request.organization_id,
            "date_from": request.date_from,
            "date_to": request.date_to,
        }

        def read(conn: psycopg.Connection[Any]) -> DashboardMetrics:
            statements, statement = self.statements(conn)
            cursor = conn.cursor(row_factory=dict_row)
            row = cursor.execute(statement, params, prepare=True).fetchone()
            assert row is not None  # aggregates always yield one row
            return self._result(request, statements, row)

        return self.run(read)

    def run(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``read`` on a pooled connection, with the read path's bounded retries.

        A vanished materialized view makes the views be rediscovered (its block is then
        read live); a lost connection or a timeout is retried after a short backoff; after
        ``retries`` more attempts the caller gets ``Unavailable``.
        """
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with self.pool.connection() as conn:
                    return read(conn)
            except psycopg.errors.UndefinedTable as exc:
                if not any(name in str(exc) for name in (WATERMARKS_TABLE, *MATERIALIZED_VIEWS)):
                    raise Unavailable(
                        f"the daily views are missing from schema {self.settings.schema!r}:"
                        f" run `dbt build` first ({exc})"
                    ) from exc
                log.warning("a materialized view disappeared; reading its block live: %s", exc)
                self.forget_views()
                last_error = exc
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("PostgreSQL attempt %d failed: %s", attempt + 1, exc)
                last_error = exc
                if not isinstance(exc, PoolTimeout | psycopg.errors.QueryCanceled):
                    # A lost connection (restart, terminated backends) usually means its idle
                    # siblings are dead too: test them all now, or each retry would draw one.
                    self.pool.check()
                if attempt < self.retries:
                    time.sleep(min(0.05 * 2**attempt, 0.5))
        raise Unavailable(
            f"PostgreSQL did not answer after {self.retries + 1} attempts: {last_error}"
        ) from last_error

    def _result(
        self, request: MetricsRequest, statements: HybridStatements, row: Mapping[str, Any]
    ) -> DashboardMetrics:
        metrics: dict[str, MetricValue] = {}
        for key in METRIC_KEYS:
            kind = METRIC_KINDS[key]
            if kind == "breakdown":
                prefix = _BREAKDOWN_COLUMNS[key]
                metrics[key] = {v: int(row[f"{prefix}_{v}"]) for v in BREAKDOWN_VALUES[key]}
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
            block: range_freshness(views, available, watermarks, request.date_from, request.date_to)
            for block, views in BLOCK_VIEWS.items()
            if block != "current_state"
        }
        # The snapshot is not a range: it is either the view's (with its watermark) or live.
        today = dt.datetime.now(self.settings.zone).date()
        snapshot = range_freshness(
            BLOCK_VIEWS["current_state"], available, watermarks, today, today
        )
        is_live = bool(row["current_state_is_live"])
        result["current_state"] = BlockFreshness(
            watermark=None if is_live else snapshot.watermark,
            first_live_day=today if is_live else None,
            live_reason=snapshot.live_reason or ("no snapshot row yet" if is_live else None),
        )
        return result


def range_freshness(
    views: Sequence[str],
    available: frozenset[str],
    watermarks: Mapping[str, Mapping[str, Any]],
    date_from: dt.date,
    date_to: dt.date,
) -> BlockFreshness:
    """A block's §4 freshness for a range: the oldest watermark of its views and the first
    day read live, or the whole range live and why when a view cannot be used."""
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
    )


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
    return None
