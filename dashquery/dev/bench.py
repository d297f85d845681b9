"""The measurements behind ``dashquery bench``: the read paths, refresh and concurrency.

``run_bench(settings, options)`` measures a database that already holds generated data and
the built dbt project, and returns a JSON-ready report; ``bench_dbt.generated_database``
makes such a database in a local stack, and ``bench_report`` holds the statistics, the
targets and the JSON, PNG and terminal outputs.

All three read paths run on the same data in one process, interleaved per sample (naive,
hybrid, cached for the same organization), so drift in the machine's load hits them alike.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from rich.progress import Progress

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev.bench_dbt import measure_refresh
from dashquery.dev.bench_report import elapsed_ms, evaluate_targets, progress_bar, ratios, summarize
from dashquery.dev.naive import naive_metrics
from dashquery.errors import Misconfigured
from dashquery.read.request import MetricsRequest

REFRESH_SELECTORS = ("tag:15min", "tag:5min")
FLOOR_SAMPLES = 1000


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """What to measure and how much; ``volume`` only labels the report (and its targets)."""

    volume: str = "existing"
    samples: int = 60
    clients: int = 50
    seconds: float = 10.0
    seed: int = 0
    orgs: int | None = None
    refresh_selectors: tuple[str, ...] = REFRESH_SELECTORS
    progress: bool = True


@dataclass(frozen=True)
class BenchRange:
    label: str
    date_from: dt.date
    date_to: dt.date

    def to_dict(self) -> dict[str, Any]:
        days = (self.date_to - self.date_from).days + 1
        return {
            "label": self.label,
            "from": str(self.date_from),
            "to": str(self.date_to),
            "days": days,
        }


def bench_ranges(today: dt.date) -> list[BenchRange]:
    """1 to 730 days ending today, and 90 days a year back (wholly materialized)."""
    ranges = [
        BenchRange(f"{n}d", today - dt.timedelta(days=n - 1), today)
        for n in (1, 7, 30, 90, 365, 730)
    ]
    past_end = today - dt.timedelta(days=365)
    return [*ranges, BenchRange("90d a year ago", past_end - dt.timedelta(days=89), past_end)]


def common_ranges(today: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """The seeds' dashboard presets, in business days."""
    return {
        "today": (today, today),
        "this week": (today - dt.timedelta(days=today.weekday()), today),
        "this month": (today.replace(day=1), today),
        "last 30 days": (today - dt.timedelta(days=29), today),
    }


# -- the run ----------------------------------------------------------------------------------


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


# -- 1. the three read paths ----------------------------------------------------------------


def measure_latency(
    conn: psycopg.Connection[Any],
    client: Client,
    settings: Settings,
    orgs: Sequence[uuid.UUID],
    ranges: Sequence[BenchRange],
    options: BenchOptions,
    rng: random.Random,
    bar: Progress,
) -> dict[str, Any]:
    paths: dict[str, dict[str, list[float]]] = {"naive": {}, "hybrid": {}, "cached": {}}
    hits = total = 0
    task = bar.add_task("naive / hybrid / cached reads", total=len(ranges) * options.samples)
    for r in ranges:
        picks = [rng.choice(orgs) for _ in range(options.samples)]
        # Not measured: the first runs plan and prepare statements and fill the buffer
        # cache; the cache warm-up stores every (organization, range) read below.
        naive_metrics(conn, settings, picks[0], r.date_from, r.date_to)
        for _ in range(2):
            client.compute(picks[0], r.date_from, r.date_to)
        for org in dict.fromkeys(picks):
            client.get_metrics(org, r.date_from, r.date_to)
        for name in paths:
            paths[name][r.label] = []
        for org in picks:
            t = time.perf_counter()
            naive_metrics(conn, settings, org, r.date_from, r.date_to)
            paths["naive"][r.label].append(elapsed_ms(t))
            t = time.perf_counter()
            client.compute(org, r.date_from, r.date_to)
            paths["hybrid"][r.label].append(elapsed_ms(t))
            t = time.perf_counter()
            result = client.get_metrics(org, r.date_from, r.date_to)
            paths["cached"][r.label].append(elapsed_ms(t))
            hits += result.source == "cache"
            total += 1
            bar.advance(task)
    stats = {
        name: {label: summarize(values) for label, values in by_range.items()}
        for name, by_range in paths.items()
    }
    return {
        "ranges": [r.to_dict() for r in ranges],
        "stats_ms": stats,
        "ratios": {
            "naive_over_hybrid": ratios(stats["naive"], stats["hybrid"]),
            "hybrid_over_cached": ratios(stats["hybrid"], stats["cached"]),
        },
        "cached_hit_rate": hits / total if total else 0.0,
        "samples_ms": {
            name: {label: [round(v, 4) for v in values] for label, values in by_range.items()}
            for name, by_range in paths.items()
        },
    }


def measure_floors(client: Client, org: uuid.UUID, r: BenchRange, bar: Progress) -> dict[str, Any]:
    """What any read pays at least: one Redis GET of a cached value's size, one pooled
    ``SELECT 1``."""
    task = bar.add_task("floors (Redis GET, SELECT 1)", total=2 * FLOOR_SAMPLES)
    floors: dict[str, Any] = {}
    if client.cache is not None:
        client.get_metrics(org, r.date_from, r.date_to)
        cached = client.cache.key(MetricsRequest.parse(org, r.date_from, r.date_to)).value
        size = client.cache.redis.strlen(cached) or 2048
        key = f"dashquery-bench:floor:{uuid.uuid4().hex}"
        client.cache.redis.set(key, os.urandom(size), ex=600)
        try:
            redis_ms = []
            for _ in range(FLOOR_SAMPLES):
                t = time.perf_counter()
                client.cache.redis.get(key)
                redis_ms.append(elapsed_ms(t))
                bar.advance(task)
        finally:
            client.cache.redis.delete(key)
        floors["redis_get"] = summarize(redis_ms) | {"value_bytes": size}
    pg_ms = []
    for _ in range(FLOOR_SAMPLES):
        t = time.perf_counter()
        with client.pool.connection() as conn:
            conn.execute("select 1").fetchone()
        pg_ms.append(elapsed_ms(t))
        bar.advance(task)
    floors["pg_select_1"] = summarize(pg_ms) | {"includes": "pool checkout and return"}
    return floors


# -- 3. concurrency ---------------------------------------------------------------------------


def measure_concurrency(
    client: Client,
    orgs: Sequence[uuid.UUID],
    today: dt.date,
    options: BenchOptions,
    bar: Progress,
) -> dict[str, Any]:
    """``clients`` threads share ``client`` and ask for the common ranges, back to back."""
    presets = list(common_ranges(today).values())
    # A cold start, so the hit rate includes the misses that fill the cache (O(1) per org).
    for org in orgs:
        client.invalidate_org(org)
    latencies: list[list[float]] = [[] for _ in range(options.clients)]
    hits = [0] * options.clients
    errors = [0] * options.clients
    start = threading.Barrier(options.clients + 1)
    deadline = 0.0

    def worker(index: int) -> None:
        rng = random.Random(f"{options.seed}:{index}")
        start.wait()
        while time.perf_counter() < deadline:
            date_from, date_to = rng.choice(presets)
            t = time.perf_counter()
            try:
                result = client.get_metrics(rng.choice(orgs), date_from, date_to)
            except Exception:  # counted, never fatal: the report shows the error count
                errors[index] += 1
                continue
            latencies[index].append(elapsed_ms(t))
            hits[index] += result.source == "cache"

    task = bar.add_task(f"{options.clients} clients", total=options.seconds)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(options.clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline = began + options.seconds
    start.wait()
    while (now := time.perf_counter()) < deadline:
        bar.update(task, completed=now - began)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    bar.update(task, completed=options.seconds)
    flat = [ms for per_thread in latencies for ms in per_thread]
    return {
        "model": (
            f"{options.clients} threads in one process sharing one Client (pool_size"
            f" {client.pool.max_size}), closed loop without think time, cold cache at start"
        ),
        "clients": options.clients,
        "seconds": round(elapsed, 3),
        "requests": len(flat),
        "errors": sum(errors),
        "throughput_rps": len(flat) / elapsed if elapsed > 0 else 0.0,
        "latency_ms": summarize(flat),
        "hit_rate": sum(hits) / len(flat) if flat else 0.0,
        "ranges": {name: [str(a), str(b)] for name, (a, b) in common_ranges(today).items()},
    }
