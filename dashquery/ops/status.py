"""The health of every materialized view, read from dbt's bookkeeping tables.

``collect_status`` is what ``dashquery status`` prints and what a health check or a
``/metrics`` endpoint calls. A view is unhealthy when it is:

- **missing**: expected (``catalog.MATERIALIZED_VIEWS``) but neither a populated
  materialized view nor a table (the incremental strategy's), or never recorded a watermark;
- **failed**: its last run (skipped runs aside) failed, its watermark row carries a failure
  recorded after it, or its last run is still ``running`` although nobody holds its
  advisory lock, i.e. the dbt process died mid-refresh;
- **outdated**: it was refreshed from an older definition of a daily view it reads than the
  one deployed now (a partial deploy, ``dbt run --select daily_x``): the read path reads its
  block live until ``dbt run --select mv_x`` refreshes it;
- **overdue**: its watermark is older than ``OVERDUE_FACTOR`` times its cadence: one missed
  refresh is tolerated (cron jitter, a refresh still running), two mean the schedule stopped.

The deployment as a whole is unhealthy (``StatusReport.problems``) when dbt built the views
for another DASHQUERY_TIMEZONE or DASHQUERY_SOURCE_SCHEMA than these settings (the read path
then refuses with ``Misconfigured``), or when Redis is unreachable or runs a ``maxmemory``
policy under which an invalidation can be lost. A change-capture deployment without a
``dashquery listen`` connected is a warning (``StatusReport.warnings``), not unhealthy.

Ages are measured on the database clock (``now()``), the clock the watermarks were written
with, so a skewed application host cannot make a view look fresh or stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dashquery.catalog import (
    DEPLOYMENT_TABLE,
    LOCK_KEY_PREFIX,
    MATERIALIZED_VIEWS,
    QUEUE_TABLE,
    RELATIONS_TABLE,
    RUNS_TABLE,
    WATERMARKS_TABLE,
)
from dashquery.config import Settings
from dashquery.observability import REFRESH_SECONDS, VIEW_WATERMARK_AGE
from dashquery.ops.pg_errors import pg_error
from dashquery.ops.status_checks import (
    check_listener,
    check_redis,
    outdated_views,
    settings_drift,
    uncaptured_views,
)
from dashquery.ops.status_report import (
    OVERDUE_FACTOR,
    LastRun,
    StatusReport,
    ViewStatus,
    human_duration,
)

__all__ = ["OVERDUE_FACTOR", "StatusReport", "ViewStatus", "collect_status", "human_duration"]

# The materialization commits its 'running' row and only then takes the advisory lock, a
# few statements later; a younger unlocked 'running' row is a run starting, not a dead one.
LOCK_GRACE_SECONDS = 30.0

# The materialized relation is a populated materialized view or, with the incremental
# refresh strategy, a table ('r'; 'p' if partitioned): both count as existing.
_RELATIONS = sql.SQL(
    "select c.relname, c.relkind in ('m', 'r', 'p') and c.relispopulated as is_view"
    " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    " where n.nspname = %(schema)s and (c.relkind = 'm' or c.relname = any(%(names)s))"
)
_WATERMARKS = sql.SQL(
    "select view_name, watermark, refreshed_at, duration_ms, row_count, cadence_minutes,"
    " last_failed_at, last_error, extract(epoch from now() - watermark)::float8 as age_seconds"
    " from {}"
)
# The lock key is the materialization's: hashtextextended('<LOCK_KEY_PREFIX><schema>.<view>', 0),
# held with pg_try_advisory_lock for the whole refresh. pg_locks shows a bigint key split
# into classid (high 32 bits) and objid (low 32 bits) with objsubid = 1. Reading pg_locks
# never takes the lock, so checking cannot make a concurrent cron refresh skip.
_LATEST_RUNS = sql.SQL(
    """select v.view_name, r.status, r.started_at, r.finished_at, r.duration_ms, r.error,
    extract(epoch from now() - r.started_at)::float8 as running_seconds,
    exists (
        select
        from pg_locks l,
            hashtextextended({lock_prefix} || %(schema)s || '.' || v.view_name, 0) as k
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1
            and l.database = (select oid from pg_database where datname = current_database())
            and l.classid = ((k >> 32) & 4294967295)::oid and l.objid = (k & 4294967295)::oid
    ) as is_locked
from unnest(%(views)s::text[]) as v (view_name)
cross join lateral (
    -- the run log only grows: one index probe per view instead of sorting the whole log
    select * from {runs} as runs
    where runs.view_name = v.view_name and runs.status <> 'skipped'
    order by runs.started_at desc, runs.run_id desc
    limit 1
) as r"""
)
_QUEUE = sql.SQL("select view_name, requested_at from {}")


def collect_status(
    settings: Settings, *, lock_grace_seconds: float = LOCK_GRACE_SECONDS
) -> StatusReport:
    """Read the bookkeeping tables and judge every view; also sets the Prometheus gauges.

    A ``running`` run without its lock counts as interrupted once it is older than
    ``lock_grace_seconds``. Raises ``Unavailable`` when PostgreSQL cannot be reached.
    """
    try:
        with psycopg.connect(settings.conninfo, autocommit=True, connect_timeout=10) as conn:
            report = _collect(conn, settings, lock_grace_seconds)
    except psycopg.Error as exc:
        raise pg_error(exc, "read the refresh bookkeeping") from exc
    _export_gauges(report)
    redis_problem = check_redis(settings.redis_url)
    if redis_problem is None:
        return report
    return dataclasses.replace(report, problems=(*report.problems, redis_problem))


def _collect(
    conn: psycopg.Connection[Any], settings: Settings, lock_grace_seconds: float
) -> StatusReport:
    schema = sql.Identifier(settings.schema)
    cursor = conn.cursor(row_factory=dict_row)
    now_row = cursor.execute("select now() as now").fetchone()
    assert now_row is not None
    bookkeeping = [WATERMARKS_TABLE, RUNS_TABLE, QUEUE_TABLE, RELATIONS_TABLE, DEPLOYMENT_TABLE]
    names = [*bookkeeping, *MATERIALIZED_VIEWS]
    relations = {
        row["relname"]: row["is_view"]
        for row in cursor.execute(_RELATIONS, {"schema": settings.schema, "names": names})
    }

    def table(name: str) -> sql.Composed | None:
        # Before the first dbt run the bookkeeping tables do not exist: every view is missing.
        return sql.SQL("{}.{}").format(schema, sql.Identifier(name)) if name in relations else None

    marks: dict[str, Mapping[str, Any]] = {}
    runs: dict[str, Mapping[str, Any]] = {}
    queued: dict[str, dt.datetime] = {}
    if (watermarks := table(WATERMARKS_TABLE)) is not None:
        marks = {row["view_name"]: row for row in cursor.execute(_WATERMARKS.format(watermarks))}
    if (runs_table := table(RUNS_TABLE)) is not None:
        query = _LATEST_RUNS.format(runs=runs_table, lock_prefix=sql.Literal(LOCK_KEY_PREFIX))
        params = {"schema": settings.schema, "views": sorted({*MATERIALIZED_VIEWS, *marks})}
        runs = {row["view_name"]: row for row in cursor.execute(query, params)}
    if (queue := table(QUEUE_TABLE)) is not None:
        queued = {
            row["view_name"]: row["requested_at"] for row in cursor.execute(_QUEUE.format(queue))
        }

    problems: list[str] = []
    outdated: dict[str, str] = {}
    if (built := table(RELATIONS_TABLE)) is not None:
        problems = settings_drift(cursor, built, settings)
        if watermarks is not None:
            outdated = outdated_views(cursor, built, watermarks)
    elif watermarks is not None:
        problems.append(
            f"settings: schema {settings.schema!r} has no {RELATIONS_TABLE} table (built by an"
            " older dashquery), so its settings cannot be checked: run dbt build"
        )
    if watermarks is not None and (deployment := table(DEPLOYMENT_TABLE)) is not None:
        for name, problem in uncaptured_views(cursor, watermarks, deployment).items():
            outdated[name] = f"{outdated[name]}; {problem}" if name in outdated else problem

    names = [*MATERIALIZED_VIEWS, *sorted(set(marks) - set(MATERIALIZED_VIEWS))]
    views = tuple(
        _judge(
            name,
            expected=name in MATERIALIZED_VIEWS,
            exists=bool(relations.get(name)),
            mark=marks.get(name),
            run=runs.get(name),
            queued_at=queued.get(name),
            outdated=outdated.get(name),
            lock_grace_seconds=lock_grace_seconds,
        )
        for name in names
    )
    return StatusReport(
        checked_at=now_row["now"],
        schema=settings.schema,
        views=views,
        problems=tuple(problems),
        settings={
            "schema": settings.schema,
            "source_schema": settings.source_schema,
            "timezone": settings.timezone,
        },
        listener=check_listener(cursor, settings),
    )


def _judge(
    name: str,
    *,
    expected: bool,
    exists: bool,
    mark: Mapping[str, Any] | None,
    run: Mapping[str, Any] | None,
    queued_at: dt.datetime | None,
    outdated: str | None,
    lock_grace_seconds: float,
) -> ViewStatus:
    problems: list[str] = []
    if not exists:
        problems.append("missing: not a populated materialized view or table")
    elif mark is None:
        problems.append("missing: no watermark recorded (never refreshed)")

    last_run = None
    is_running = False
    if run is not None:
        last_run = LastRun(
            status=run["status"],
            started_at=run["started_at"],
            finished_at=run["finished_at"],
            duration_seconds=_seconds(run["duration_ms"]),
            error=run["error"],
        )
        if run["status"] == "failed":
            problems.append(f"failed: {run['error'] or 'unknown error'}")
        elif run["status"] == "running" and run["is_locked"]:
            is_running = True
        elif run["status"] == "running" and run["running_seconds"] >= lock_grace_seconds:
            problems.append("failed: interrupted (a 'running' run whose lock nobody holds)")
        elif run["status"] == "running":
            is_running = True  # just started: the lock follows within statements

    if (
        mark is not None
        and mark["last_failed_at"] is not None
        and not any(problem.startswith("failed") for problem in problems)
    ):
        problems.append(f"failed: {mark['last_error'] or 'unknown error'}")
    if outdated is not None and exists:
        problems.append(outdated)
    age = mark["age_seconds"] if mark else None
    cadence = mark["cadence_minutes"] if mark else None
    if age is not None and cadence is not None and age > OVERDUE_FACTOR * cadence * 60:
        problems.append(
            f"overdue: watermark {human_duration(age)} old, over {OVERDUE_FACTOR} x {cadence} min"
        )
    return ViewStatus(
        view=name,
        expected=expected,
        exists=exists,
        watermark=mark["watermark"] if mark else None,
        age_seconds=age,
        cadence_minutes=cadence,
        row_count=mark["row_count"] if mark else None,
        last_refresh_seconds=_seconds(mark["duration_ms"]) if mark else None,
        last_error=(mark["last_error"] if mark else None) or (last_run.error if last_run else None),
        last_run=last_run,
        is_running=is_running,
        queued_at=queued_at,
        problems=tuple(problems),
    )


def _export_gauges(report: StatusReport) -> None:
    for view in report.views:
        if view.age_seconds is None:
            # A gauge left at its last value would hide that the view is gone.
            for gauge in (VIEW_WATERMARK_AGE, REFRESH_SECONDS):
                with contextlib.suppress(KeyError):
                    gauge.remove(view.view)
            continue
        VIEW_WATERMARK_AGE.labels(view.view).set(view.age_seconds)
        if view.last_refresh_seconds is not None:
            REFRESH_SECONDS.labels(view.view).set(view.last_refresh_seconds)


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000
