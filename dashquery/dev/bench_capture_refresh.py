"""What a refresh costs after a change, with capture on (issue 13 item 6).

Every refresh is ``dbt run --select ...`` with whatever ``refresh_strategy`` the project
configures (incremental or concurrent), timed by the views' own ``duration_ms`` in
``dashquery_refresh_runs`` for that invocation (``bench_dbt.timed_refresh``), and the change
table counted before and after (a refresh must consume what it recomputed).

1. ``after_changes``: 1,000 rows of orders, jobs and opportunities changed (most of
   them back-dated: their days are drawn from the whole history) spread over up to 50
   organizations and 200 days, then ``tag:15min``; the figure is the sum of its views'
   ``duration_ms``. Measured on the built database, before the write-overhead loads.
2. ``single_row``: one old order changed, then ``dbt run --select mv_daily_orders``; its
   ``duration_ms`` (median of ``single_repeats``). Also before the loads.
3. ``refresh_after_bulk`` (in the write-overhead report): the refresh that follows the
   write-overhead bulk loads; then ``after_changes_post_bulk``: another 1,000 changed rows
   and ``tag:15min`` on the tables those loads left (dead rows, autovacuum at work).
4. ``backfill``: ``backfill_rows`` rows (orders, each with one line) inserted into one
   organization across its history; ``get_metrics`` (cache off) checked exact against the
   naive query for several ranges before and after the refresh. Then every cadence is
   refreshed and ``dbt test`` runs the materialized relations' data tests (each against its
   daily view and the application tables): a group the capture never recorded survives an
   incremental refresh and fails there, whatever ranges the reads happened to check (a
   distinct count over a long range can hide a stale customer day).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from dashquery.catalog import CHANGES_TABLE, DAILY_BLOCKS
from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev.bench_capture_modes import changes_count
from dashquery.dev.bench_dbt import timed_refresh
from dashquery.dev.naive import naive_metrics
from dashquery.ops.dbt_runner import run_dbt

ALL_TAGS = "tag:15min tag:5min tag:hourly"
MATERIALIZED_MODELS = "path:models/materialized"
BACKFILL_STEPS = 4  # how many times ``backfill`` advances its progress bar
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# dbt's line per failed test: "3 of 9 FAIL 2 <test name> ....... [FAIL 2 in 1.2s]"
_FAILED_TEST = re.compile(r"\d+ of \d+ (?:FAIL|ERROR)(?: \d+)? (\S+)")
ORDERS_MV = next(b.materialized_view for b in DAILY_BLOCKS if b.name == "orders")
CHANGED_ROWS = 1000
CHANGED_ORGS = 50
CHANGED_DAYS = 200
# How the 1,000 changed rows split over the tables (statement per table, one transaction).
_CHANGE_MIX = {
    "orders": ("total_cents = total_cents + 1, updated_at = now()", "created_at", 400),
    "jobs": ("estimated_hours = estimated_hours + 0.25, updated_at = now()", "scheduled_at", 300),
    "opportunities": ("value_cents = value_cents + 100, updated_at = now()", "created_at", 300),
}


def refresh(settings: Settings, selector: str) -> dict[str, Any]:
    """``timed_refresh`` plus the change table before/after and the views' summed time."""
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        before = changes_count(conn, settings)
        run = timed_refresh(settings, selector)
        after = changes_count(conn, settings)
        left = changed_groups(conn, settings)
    views_ms = run["views_ms"]
    return run | {
        "selector": selector,
        "views_ms_sum": round(sum(ms for ms in views_ms.values() if ms is not None), 3),
        "change_rows_before": before,
        "change_rows_after": after,
        # What the selector did not refresh (e.g. current_state is tag:5min) stays recorded.
        "change_rows_left_by_view": left,
    }


def changed_groups(conn: psycopg.Connection[Any], settings: Settings) -> dict[str, int]:
    query = sql.SQL("select daily_view, count(*) from {} group by 1 order by 1").format(
        sql.Identifier(settings.schema, CHANGES_TABLE)
    )
    return {view: int(n) for view, n in conn.execute(query)}


def change_rows(
    settings: Settings,
    orgs: Sequence[uuid.UUID],
    rng: random.Random,
    today: dt.date,
) -> dict[str, Any]:
    """Change ~1,000 rows over up to 50 organizations and 200 days of the history."""
    chosen_orgs = rng.sample(list(orgs), min(CHANGED_ORGS, len(orgs)))
    days = sorted(rng.sample(range(1, 730), CHANGED_DAYS))
    chosen_days = [today - dt.timedelta(days=n) for n in days]
    src = sql.Identifier(settings.source_schema)
    changed: dict[str, int] = {}
    touched_orgs: set[uuid.UUID] = set()
    touched_days: set[dt.date] = set()
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        with conn.transaction():
            for table, (assignment, day_column, count) in _CHANGE_MIX.items():
                pick = sql.SQL(
                    "select id, organization_id, ({day} at time zone %s)::date as day"
                    " from {src}.{table} where organization_id = any(%s)"
                    " and ({day} at time zone %s)::date = any(%s)"
                    " order by md5(id::text || %s) limit %s"
                ).format(day=sql.Identifier(day_column), src=src, table=sql.Identifier(table))
                tz = settings.timezone
                rows = conn.execute(
                    pick, (tz, chosen_orgs, tz, chosen_days, str(rng.random()), count)
                ).fetchall()
                update = sql.SQL("update {}.{} set {} where id = any(%s)").format(
                    src, sql.Identifier(table), sql.SQL(assignment)
                )
                conn.execute(update, ([r[0] for r in rows],))
                changed[table] = len(rows)
                touched_orgs |= {r[1] for r in rows}
                touched_days |= {r[2] for r in rows}
        groups = changed_groups(conn, settings)
    return {
        "rows": changed,
        "total_rows": sum(changed.values()),
        "organizations": len(touched_orgs),
        "days": len(touched_days),
        "oldest_day_back": (today - min(touched_days)).days if touched_days else None,
        "change_rows_by_view": groups,
    }


def single_row_refreshes(settings: Settings, rng: random.Random, repeats: int) -> dict[str, Any]:
    """One old order changed, then ``dbt run --select mv_daily_orders``, ``repeats`` times."""
    src = sql.Identifier(settings.source_schema)
    runs = []
    for _ in range(repeats):
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL(
                    "select id from {}.orders where created_at < now() - interval '300 days'"
                    " order by md5(id::text || %s) limit 1"
                ).format(src),
                (str(rng.random()),),
            ).fetchone()
            assert row is not None, "no order older than 300 days"
            conn.execute(
                sql.SQL("update {}.orders set total_cents = total_cents + 1 where id = %s").format(
                    src
                ),
                (row[0],),
            )
        runs.append(refresh(settings, ORDERS_MV))
    durations = [r["views_ms"].get(ORDERS_MV) for r in runs]
    measured = [d for d in durations if d is not None]
    return {
        "changed": "one order 300+ days old (total_cents)",
        "selector": ORDERS_MV,
        "duration_ms": durations,
        "median_ms": statistics.median(measured) if measured else None,
        "runs": runs,
    }


def _check_exact(
    client: Client, conn: psycopg.Connection[Any], settings: Settings, org: uuid.UUID,
    ranges: Sequence[tuple[dt.date, dt.date]],
) -> dict[str, Any]:  # fmt: skip
    mismatches = []
    for date_from, date_to in ranges:
        result = client.get_metrics(org, date_from, date_to)
        expected = naive_metrics(conn, settings, org, date_from, date_to)
        wrong = sorted(k for k, v in expected.items() if result.metrics[k] != v)
        if wrong:
            mismatches.append({"from": str(date_from), "to": str(date_to), "keys": wrong})
    return {"ranges": len(ranges), "exact": not mismatches, "mismatches": mismatches}


def backfill(
    settings: Settings,
    rows: int,
    today: dt.date,
    advance: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``rows`` rows (orders and their one line each) into the organization with the most
    customers, ``get_metrics`` exact against the naive query before and after the refresh."""
    src = sql.Identifier(settings.source_schema)
    orders = rows // 2
    day = dt.timedelta(days=1)
    ranges = [
        (today - 729 * day, today),
        (today - 364 * day, today - 30 * day),
        (today - 400 * day, today - 200 * day),
        (today - 6 * day, today),
    ]
    backfill_sql = sql.SQL(
        "with new_orders as ("
        " insert into {src}.orders (id, organization_id, customer_id, status, total_cents,"
        "  created_at, updated_at)"
        " select gen_random_uuid(), %(org)s, c.ids[1 + (n %% array_length(c.ids, 1))],"
        "  (array['confirmed','shipped','delivered','cancelled'])[1 + n %% 4], 1000 + n,"
        "  now() - (n %% 730) * interval '1 day' - (n %% 86400) * interval '1 second', now()"
        " from generate_series(1, %(n)s) as n,"
        "  (select array_agg(id order by id) as ids from {src}.customers"
        "   where organization_id = %(org)s) as c"
        " returning id, created_at)"
        " insert into {src}.order_items (id, organization_id, order_id, product_id, quantity,"
        "  unit_price_cents, line_total_cents, created_at)"
        " select gen_random_uuid(), %(org)s, o.id, p.id, 2, 500, 1000, o.created_at"
        " from new_orders o, (select id from {src}.products where organization_id = %(org)s"
        "  order by id limit 1) as p"
    ).format(src=src)
    with (
        psycopg.connect(settings.conninfo, autocommit=True) as conn,
        Client(settings=settings, cache=False) as client,
    ):
        biggest = sql.SQL(
            "select organization_id from {}.customers group by 1 order by count(*) desc, 1 limit 1"
        ).format(src)
        org = conn.execute(biggest).fetchone()[0]  # type: ignore[index]
        started = time.perf_counter()
        conn.execute(backfill_sql, {"org": org, "n": orders})
        seconds = round(time.perf_counter() - started, 3)
        advance()
        changes = changed_groups(conn, settings)
        before = _check_exact(client, conn, settings, org, ranges)
        advance()
        run = refresh(settings, "tag:15min")
        advance()
        after = _check_exact(client, conn, settings, org, ranges)
        advance()
        tests = materialized_tests(settings)
    return {
        "organization": str(org),
        "rows": 2 * orders,
        "orders": orders,
        "order_items": orders,
        "insert_seconds": seconds,
        "change_rows_by_view": changes,
        "exact_before_refresh": before,
        "refresh": run,
        "exact_after_refresh": after,
        "materialized_tests": tests,
    }


def materialized_tests(settings: Settings) -> dict[str, Any]:
    """``dbt run`` of every cadence, then ``dbt test`` of the materialized relations: whether
    every one passed, and the names of those that failed."""
    run_dbt(["run", "--select", *ALL_TAGS.split()], settings)
    result = run_dbt(["test", "--select", MATERIALIZED_MODELS], settings, check=False)
    output = _ANSI.sub("", result.output)
    failed = sorted(set(_FAILED_TEST.findall(output)))
    return {
        "selector": MATERIALIZED_MODELS,
        "passed": result.returncode == 0,
        "failed": failed or ([] if result.returncode == 0 else output.splitlines()[-5:]),
    }
