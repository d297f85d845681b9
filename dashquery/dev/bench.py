"""The measurements behind ``dashquery bench``: the read paths, refresh and concurrency.

``run_bench(settings, options)`` measures a database that already holds generated data and
the built dbt project, and returns a JSON-ready report; ``bench_dbt.generated_database``
makes such a database in a local stack. The parts: ``bench_options`` (what is measured, the
scenarios' data), ``bench_latency`` (1. read paths, checked exact, and floors),
``bench_cached`` (the cache hit against a bare GET, tight loop), ``bench_statement`` (the
hybrid statement's server-side time), ``bench_dbt`` (2. refresh), ``bench_concurrency``
(3. concurrent clients), ``bench_targets`` (4. the targets); ``bench_stats`` holds the
statistics, ``bench_report`` the JSON, PNG and terminal outputs, ``bench_docs`` the
generated sections of docs/BENCHMARKS.md.

The read scenarios (``options.scenario``): ``read`` measures all of the above; ``ten-year``
and ``large-tenant`` measure the read paths, the cache hit and the statement only (refresh
and concurrency are the ``read`` scenario's questions), and ``large-tenant`` reads only its
largest organization.

``run_capture_bench(settings, options)`` is the capture scenario (``--scenario capture``):
the writers' cost of the capture triggers (``bench_capture``) and the refreshes after
changes (``bench_capture_refresh``); it changes the database's data.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev import bench_capture_refresh as capture_refresh
from dashquery.dev.bench_cached import measure_cached
from dashquery.dev.bench_capture import measure_write_overhead, progress_steps
from dashquery.dev.bench_concurrency import measure_concurrency
from dashquery.dev.bench_dbt import measure_refresh
from dashquery.dev.bench_latency import measure_floors, measure_latency
from dashquery.dev.bench_options import BenchOptions, BenchRange, bench_ranges
from dashquery.dev.bench_statement import measure_statement
from dashquery.dev.bench_stats import progress_bar
from dashquery.dev.bench_targets import evaluate_targets
from dashquery.errors import Misconfigured


@dataclass(frozen=True)
class _Run:
    """When a scenario started and the machine's load then: both scenarios' reports end
    with the same meta fields and targets (``finish``)."""

    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: float = field(default_factory=time.perf_counter)
    load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def finish(self, report: dict[str, Any]) -> dict[str, Any]:
        """``report`` with its timing and load in ``meta``, and its targets evaluated."""
        report["meta"] |= {
            "started_at": self.started_at.isoformat(),
            "seconds": round(time.perf_counter() - self.started, 1),
            "load_average": {"start": self.load_start, "end": os.getloadavg()},
        }
        report["targets"] = evaluate_targets(report)
        return report


def run_bench(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """Measure the database of ``settings`` (data generated, dbt run) and return the report."""
    run = _Run()
    rng = random.Random(options.seed)
    today = dt.datetime.now(settings.zone).date()
    ranges = bench_ranges(today, options.scenario)
    full = options.scenario == "read"  # refresh and concurrency too
    # Every client thread may hold a connection at once: the pool must never be the queue.
    pool_size = max(options.clients if full else 1, 4) + 2
    report: dict[str, Any] = {}
    with (
        Client(settings=settings, pool_size=pool_size) as client,
        psycopg.connect(settings.conninfo, autocommit=True) as conn,
        progress_bar(options.progress) as bar,
    ):
        orgs = _organizations(conn, settings, options.orgs)
        tenants = _tenants(conn, settings, orgs)
        # The large tenant's scenario reads that tenant alone: the others are its setting.
        read_orgs = [tenants["largest"]["id"]] if options.scenario == "large-tenant" else orgs
        report["meta"] = _meta(conn, client, settings, options, orgs, today, pool_size)
        report["meta"] |= {"scenario": options.scenario, "tenants": _jsonable(tenants)}
        report["meta"]["read_organizations"] = [str(org) for org in read_orgs]
        report["latency"] = measure_latency(
            conn, client, settings, read_orgs, ranges, options, rng, bar
        )
        long = next(r for r in ranges if r.label == "730d")
        report["floors"] = measure_floors(client, read_orgs[0], long, bar)
        report["cached"] = _cached(client, read_orgs[0], long, options, bar)
        report["cached"]["interleaved_ms"] = report["latency"]["stats_ms"]["cached"]["730d"]
        report["statement"] = measure_statement(
            client, read_orgs[0], ranges, options.statement_samples, bar
        )
        if full:
            report["refresh"] = measure_refresh(client, settings, orgs, ranges, options, rng, bar)
            report["concurrency"] = measure_concurrency(client, orgs, today, options, bar)
    return run.finish(report)


def _cached(
    client: Client, org: uuid.UUID, r: BenchRange, options: BenchOptions, bar: Any
) -> dict[str, Any]:
    """The tight loop of cache hits beside bare GETs (bench_cached), for one range."""
    task = bar.add_task("cache hit vs bare GET, tight loop", total=None)
    try:
        figures = measure_cached(
            client, org, r.date_from, r.date_to,
            iterations=options.cached_iterations, warmup=min(500, options.cached_iterations),
        )  # fmt: skip
    except RuntimeError as exc:  # no cache, or Redis not serving: reported, not fatal
        figures = {"error": str(exc)}
    bar.update(task, total=1, completed=1)
    return {"range": r.to_dict(), "tight_loop": figures}


def _tenants(
    conn: psycopg.Connection[Any], settings: Settings, orgs: Sequence[uuid.UUID]
) -> dict[str, Any]:
    """Orders per organization (deleted ones included): the largest, and the spread."""
    query = sql.SQL(
        "select o.id, count(r.id) from {} o left join {} r on r.organization_id = o.id"
        " where o.id = any(%s) group by o.id order by count(r.id) desc, o.id"
    ).format(
        sql.Identifier(settings.source_schema, "organizations"),
        sql.Identifier(settings.source_schema, "orders"),
    )
    counts = conn.execute(query, (list(orgs),)).fetchall()
    ordered = sorted(n for _, n in counts)
    others = sorted(n for _, n in counts[1:]) or [0]
    return {
        "largest": {"id": counts[0][0], "orders": counts[0][1]},
        "orders_per_organization": {
            "min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1],
        },
        "largest_over_median_of_others": (
            round(counts[0][1] / others[len(others) // 2], 1) if others[len(others) // 2] else None
        ),
    }  # fmt: skip


def _jsonable(tenants: dict[str, Any]) -> dict[str, Any]:
    return tenants | {"largest": tenants["largest"] | {"id": str(tenants["largest"]["id"])}}


def run_capture_bench(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """The capture scenario: write overhead, then refreshes after changes (module doc)."""
    run = _Run()
    rng = random.Random(options.seed)
    today = dt.datetime.now(settings.zone).date()
    report: dict[str, Any] = {}
    with (
        Client(settings=settings, pool_size=2) as client,
        psycopg.connect(settings.conninfo, autocommit=True) as conn,
    ):
        orgs = _organizations(conn, settings, options.orgs)
        report["meta"] = _meta(conn, client, settings, options, orgs, today, 2)
    report["meta"] |= {
        "scenario": "capture",
        "single_rows": options.single_rows,
        "bulk_rows": options.bulk_rows,
        "bulk_repeats": options.bulk_repeats,
        "single_repeats": options.single_repeats,
    }
    steps = progress_steps(
        options.single_rows, options.bulk_repeats, durable=options.durable_commits
    )
    steps += capture_refresh.BACKFILL_STEPS
    with progress_bar(options.progress) as bar:
        bar.add_task("capture: refreshes after changes", total=None)
        # Consumes what the build left and rebuilds a relation whose strategy changed, so
        # the timed refreshes below see only this scenario's changes.
        warm_up = capture_refresh.refresh(settings, capture_refresh.ALL_TAGS)
        # The refreshes after changes run before the write-overhead loads: those insert and
        # delete 1.2M rows and leave the tables with dead rows and autovacuum at work, which
        # made the same refresh 1.2-1.7x as slow at 10x (docs/BENCHMARKS.md). They are measured
        # after the loads too (after_changes_post_bulk), beside, not instead.
        changes = capture_refresh.change_rows(settings, orgs, rng, today)
        after_changes = capture_refresh.refresh(settings, "tag:15min")
        single = capture_refresh.single_row_refreshes(settings, rng, options.single_repeats)
        task = bar.add_task("capture: writes with and without capture", total=steps)
        writes = measure_write_overhead(
            settings,
            rng,
            single_rows=options.single_rows,
            bulk_rows=options.bulk_rows,
            bulk_repeats=options.bulk_repeats,
            durable=options.durable_commits,
            advance=lambda: bar.advance(task),
        )
        writes["refresh_after_bulk"] = capture_refresh.refresh(settings, "tag:15min")
        post_bulk = capture_refresh.change_rows(settings, orgs, rng, today)
        post_bulk["refresh"] = capture_refresh.refresh(settings, "tag:15min")
        backfill = capture_refresh.backfill(
            settings, options.bulk_rows, today, lambda: bar.advance(task)
        )
    report["capture"] = {
        "strategies": _strategies(settings),
        "warm_up_refresh": warm_up,
        "write_overhead": writes,
        "refresh": {
            "changes": changes,
            "after_changes": after_changes,
            "single_row": single,
            "after_changes_post_bulk": post_bulk,
            "backfill": backfill,
        },
    }
    return run.finish(report)


def _strategies(settings: Settings) -> dict[str, str]:
    """relkind of each materialized relation: a table is the incremental strategy's."""
    query = (
        "select c.relname, case c.relkind when 'm' then 'concurrent (materialized view)'"
        " when 'r' then 'incremental (table)' when 'p' then 'incremental (table)'"
        " else c.relkind::text end from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname like 'mv\\_%%' and c.relkind in ('m', 'r', 'p')"
        " order by 1"
    )
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        return dict(conn.execute(query, (settings.schema,)).fetchall())


def _organizations(
    conn: psycopg.Connection[Any], settings: Settings, limit: int | None
) -> list[uuid.UUID]:
    query = sql.SQL("select id from {} order by id").format(
        sql.Identifier(settings.source_schema, "organizations")
    )
    try:
        orgs = [row[0] for row in conn.execute(query)]
    except psycopg.errors.UndefinedTable as exc:
        raise Misconfigured(
            f"no table {settings.source_schema}.organizations: point the settings at a"
            " database with application data and the dbt project built"
        ) from exc
    if not orgs:
        raise Misconfigured(f"no organizations in {settings.source_schema}.organizations")
    return orgs[:limit] if limit else orgs


def _meta(
    conn: psycopg.Connection[Any],
    client: Client,
    settings: Settings,
    options: BenchOptions,
    orgs: Sequence[uuid.UUID],
    today: dt.date,
    pool_size: int,
) -> dict[str, Any]:
    orders = sql.SQL("select count(*) from {}").format(
        sql.Identifier(settings.source_schema, "orders")
    )
    redis_info = client.cache.redis.info("server") if client.cache else {}
    return {
        "volume": options.volume,
        "organizations": len(orgs),
        "orders": conn.execute(orders).fetchone()[0],  # type: ignore[index]
        "seed": options.seed,
        "samples": options.samples,
        "timezone": settings.timezone,
        "today": str(today),
        "pool_size": pool_size,
        "source_schema": settings.source_schema,
        "schema": settings.schema,
        "host": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "python": platform.python_version(),
            "postgres": conn.execute("show server_version").fetchone()[0],  # type: ignore[index]
            "redis": redis_info.get("redis_version"),
            # JIT compiles a costly plan even where a branch never runs (the capture
            # scenario's incremental refresh at 100x): the setting changes the figures.
            "jit": conn.execute("show jit").fetchone()[0],  # type: ignore[index]
            "jit_above_cost": conn.execute("show jit_above_cost").fetchone()[0],  # type: ignore[index]
        },
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; the platform's processor elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
