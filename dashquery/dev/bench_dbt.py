"""The benchmark's dbt side: building its database, and timing refreshes with reads beside.

A refresh is timed three ways, because they answer different questions: the wall time of
the ``dbt run`` process (what a cron job waits for: start-up and parse included), dbt's own
"Finished running" time, and the views' window in ``dashquery_refresh_runs`` (when the
database actually refreshed).
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import Progress

from dashquery.catalog import RUNS_TABLE
from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev.bench_options import BenchOptions, BenchRange, DataShape
from dashquery.dev.bench_stats import elapsed_ms, progress_bar, summarize
from dashquery.dev.generate import generate
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import run_dbt

_DBT_FINISHED = re.compile(r"Finished running .* in .*\(([\d.]+)s\)")
# Fewer reads than this inside the refresh window (a tiny database refreshes in
# milliseconds) fall back to every read made while the dbt process ran.
_MIN_WINDOW_READS = 5


@dataclass(frozen=True)
class BenchDatabase:
    """A generated database: its settings, name, and what making it took (``setup``)."""

    settings: Settings
    name: str
    setup: dict[str, Any]


def build_database(
    settings: Settings, shape: DataShape, *, seed: int, progress: bool
) -> dict[str, Any]:
    """Generate ``shape``'s data into the (empty) database of ``settings`` and `dbt run`;
    returns the setup figures (rows, generation and build seconds) for the report."""
    report = generate(
        settings.conninfo,
        source_schema=settings.source_schema,
        timezone=settings.timezone,
        seed=seed,
        days=shape.days,
        scales=shape.scales,
        progress=progress,
    )
    started = time.perf_counter()
    with progress_bar(progress) as bar:
        bar.add_task("dbt run (first build)", total=None)
        run_dbt(["run"], settings)
    return {
        "rows": report.total_rows,
        "rows_by_table": dict(report.rows),
        "generate_seconds": round(report.seconds, 1),
        "rows_per_second": round(report.rows_per_second),
        "dbt_build_seconds": round(time.perf_counter() - started, 1),
    }


@contextmanager
def generated_database(
    root: Path, shape: DataShape, *, seed: int, keep: bool, progress: bool
) -> Iterator[BenchDatabase]:
    """A fresh database with ``shape``'s data and `dbt run` done, in the local stack at
    ``root``. Without ``keep`` the database is dropped and the stack stopped afterwards; the
    cluster's files stay, so the next run skips initdb.
    """
    console = Console(stderr=True)
    stack = LocalStack(
        root=root, progress=lambda msg: console.print(msg, highlight=False) if progress else None
    )
    env = stack.start()
    name = "".join(c if c.isalnum() else "_" for c in f"bench_{shape.label}_{seed}".lower())[:63]
    _admin(stack, sql.SQL("drop database if exists {} with (force)"), name)
    _admin(stack, sql.SQL("create database {}"), name)
    base = Settings.from_env()
    settings = Settings(
        conninfo=stack.conninfo(name),
        source_schema=base.source_schema,
        schema=base.schema,
        timezone=base.timezone,
        redis_url=env["DASHQUERY_REDIS_URL"],
    )
    try:
        setup = build_database(settings, shape, seed=seed, progress=progress)
        yield BenchDatabase(settings, name, setup)
    finally:
        if not keep:
            _admin(stack, sql.SQL("drop database if exists {} with (force)"), name)
            stack.stop()


def _admin(stack: LocalStack, statement: sql.SQL, database: str) -> None:
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(statement.format(sql.Identifier(database)))


def measure_refresh(
    client: Client,
    settings: Settings,
    orgs: Sequence[uuid.UUID],
    ranges: Sequence[BenchRange],
    options: BenchOptions,
    rng: random.Random,
    bar: Progress,
) -> dict[str, Any]:
    """Each selector's `dbt run` alone, then cold hybrid reads without and during the first."""
    report: dict[str, Any] = {"selectors": {}}
    for selector in options.refresh_selectors:
        task = bar.add_task(f"dbt run --select {selector}", total=None)
        report["selectors"][selector] = timed_refresh(settings, selector)
        bar.update(task, total=1, completed=1)

    def read() -> tuple[float, float, float]:
        r = rng.choice(ranges)
        wall, started = time.time(), time.perf_counter()
        client.compute(rng.choice(orgs), r.date_from, r.date_to)
        return wall, time.time(), elapsed_ms(started)

    # Half the baseline before the refresh and half after, so drift in the machine's load
    # (other processes) weighs on both sides alike.
    half = max(2 * options.samples, 30)
    task = bar.add_task("hybrid reads, no refresh", total=2 * half)
    baseline = _reads(read, lambda count: count < half, bar, task)

    selector = options.refresh_selectors[0]
    offset = _db_clock_offset(settings)
    last_run = _last_run_id(settings)
    during_task = bar.add_task(f"hybrid reads during {selector}", total=None)
    with ThreadPoolExecutor(1) as pool:
        refresh = pool.submit(run_dbt, ["run", "--select", selector], settings)
        during = _reads(read, lambda _count: not refresh.done(), bar, during_task)
        refresh.result()
    baseline += _reads(read, lambda count: count < half, bar, task)

    runs = [run for run in _refresh_runs(settings, last_run) if run["finished_at"]]
    in_window: list[float] = []
    if runs:
        # The database's clock, shifted to ours: an --existing server may be another host.
        low = min(run["started_at"] for run in runs).timestamp() - offset
        high = max(run["finished_at"] for run in runs).timestamp() - offset
        in_window = [ms for t0, t1, ms in during if t1 >= low and t0 <= high]
    windowed = len(in_window) >= _MIN_WINDOW_READS
    chosen = in_window if windowed else [ms for _, _, ms in during]
    without, with_refresh = summarize([ms for _, _, ms in baseline]), summarize(chosen)
    report["reads"] = {
        "selector": selector,
        "mix": "one thread, Client.compute, random organization and bench range",
        "without_refresh_ms": without,
        "during_refresh_ms": with_refresh,
        "during_refresh_basis": "refresh window" if windowed else "whole dbt command",
        "during_dbt_command_ms": summarize([ms for _, _, ms in during]),
        "p95_ratio": with_refresh["p95"] / without["p95"] if without["p95"] else None,
    }
    return report


def _reads(
    read: Callable[[], tuple[float, float, float]],
    more: Callable[[int], bool],
    bar: Progress,
    task: Any,
) -> list[tuple[float, float, float]]:
    samples: list[tuple[float, float, float]] = []
    while more(len(samples)):
        samples.append(read())
        bar.advance(task)
    return samples


def timed_refresh(settings: Settings, selector: str) -> dict[str, Any]:
    """Run `dbt run --select <selector>` and time it three ways (see the module doc)."""
    last_run = _last_run_id(settings)
    result = run_dbt(["run", "--select", selector], settings)
    finished = _DBT_FINISHED.search(result.output)
    runs = _refresh_runs(settings, last_run)
    window = None
    if runs and all(run["finished_at"] for run in runs):
        start = min(run["started_at"] for run in runs)
        window = (max(run["finished_at"] for run in runs) - start).total_seconds()
    return {
        "wall_seconds": round(result.seconds, 3),
        "dbt_run_seconds": float(finished.group(1)) if finished else None,
        "refresh_window_seconds": None if window is None else round(window, 3),
        "views_ms": {run["view_name"]: run["duration_ms"] for run in runs},
        "statuses": sorted({run["status"] for run in runs}),
        # dashquery_refresh_runs' ids of this invocation: the order of a scenario's refreshes
        "run_ids": [run["run_id"] for run in runs],
    }


def _runs_table(settings: Settings) -> sql.Identifier:
    return sql.Identifier(settings.schema, RUNS_TABLE)


def _last_run_id(settings: Settings) -> int:
    query = sql.SQL("select coalesce(max(run_id), 0) from {}").format(_runs_table(settings))
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row[0])


def _refresh_runs(settings: Settings, after: int) -> list[dict[str, Any]]:
    query = sql.SQL(
        "select run_id, view_name, status, started_at, finished_at, duration_ms from {}"
        " where run_id > %s order by run_id"
    ).format(_runs_table(settings))
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        return conn.cursor(row_factory=dict_row).execute(query, (after,)).fetchall()


def _db_clock_offset(settings: Settings) -> float:
    """The database's clock minus ours, in seconds (half a round trip of error)."""
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        before = time.time()
        row = conn.execute("select extract(epoch from clock_timestamp())").fetchone()
        after = time.time()
    assert row is not None
    return float(row[0]) - (before + after) / 2
