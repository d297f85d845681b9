"""The measurements behind ``dashquery bench``: the read paths, refresh and concurrency.

``run_bench(settings, options)`` measures a database that already holds generated data and
the built dbt project, and returns a JSON-ready report; ``bench_dbt.generated_database``
makes such a database in a local stack. The parts: ``bench_options`` (what is measured),
``bench_latency`` (1. read paths and floors), ``bench_dbt`` (2. refresh),
``bench_concurrency`` (3. concurrent clients), ``bench_targets`` (4. the targets);
``bench_stats`` holds the statistics and ``bench_report`` the JSON, PNG and terminal outputs.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev.bench_concurrency import measure_concurrency
from dashquery.dev.bench_dbt import measure_refresh
from dashquery.dev.bench_latency import measure_floors, measure_latency
from dashquery.dev.bench_options import BenchOptions, bench_ranges
from dashquery.dev.bench_stats import progress_bar
from dashquery.dev.bench_targets import evaluate_targets
from dashquery.errors import Misconfigured


def run_bench(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """Measure the database of ``settings`` (data generated, dbt run) and return the report."""
    started_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    load_start = os.getloadavg()
    rng = random.Random(options.seed)
    today = dt.datetime.now(settings.zone).date()
    ranges = bench_ranges(today)
    # Every client thread may hold a connection at once: the pool must never be the queue.
    pool_size = max(options.clients, 4) + 2
    report: dict[str, Any] = {}
    with (
        Client(settings=settings, pool_size=pool_size) as client,
        psycopg.connect(settings.conninfo, autocommit=True) as conn,
        progress_bar(options.progress) as bar,
    ):
        orgs = _organizations(conn, settings, options.orgs)
        report["meta"] = _meta(conn, client, settings, options, orgs, today, pool_size)
        report["latency"] = measure_latency(conn, client, settings, orgs, ranges, options, rng, bar)
        report["floors"] = measure_floors(client, orgs[0], ranges[-2], bar)
        report["refresh"] = measure_refresh(client, settings, orgs, ranges, options, rng, bar)
        report["concurrency"] = measure_concurrency(client, orgs, today, options, bar)
    report["meta"] |= {
        "started_at": started_at.isoformat(),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }
    report["targets"] = evaluate_targets(report)
    return report


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
            "python": platform.python_version(),
            "postgres": conn.execute("show server_version").fetchone()[0],  # type: ignore[index]
            "redis": redis_info.get("redis_version"),
        },
    }
