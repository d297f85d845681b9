"""The daily views' plans over all of history stay bounded on skewed application data.

A refresh that recomputes everything (the first build, ``--full-refresh``, a bulk load past
the incremental limit) reads a daily view whole. At 100x, 196k completed jobs without an
order made ``daily_energy``'s hash join of jobs to order lines put every NULL ``order_id``
in one bucket: PostgreSQL split that batch again and again (2,097,152 batches from 16) and
the recompute of ``mv_daily_energy`` took 534 s instead of ~10 s. The same happens at test
scale with enough such jobs and a small ``work_mem``, which is what this module builds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.python.helpers import Dashboard

JOBS_WITHOUT_ORDER = 3_000
# Far more batches than the data needs at any work_mem: the sign of a batch split that
# never helps (the 100x recompute reached 2,097,152).
MAX_BATCHES = 1024


@pytest.fixture(scope="module")
def conn(scratch_dashboard: Dashboard) -> Iterator[psycopg.Connection[Any]]:
    with scratch_dashboard.connect() as connection:
        yield connection


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_jobs_without_an_order_never_blow_up_the_energy_hash_join(
    scratch_dashboard: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    src = sql.Identifier(scratch_dashboard.settings.source_schema)
    org, customer = conn.execute(
        sql.SQL("select organization_id, id from {}.customers limit 1").format(src)
    ).fetchone()  # type: ignore[misc]
    completed = dt.datetime(2026, 1, 5, 3, tzinfo=dt.UTC)
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "insert into {}.jobs (id, organization_id, order_id, customer_id, status,"
                " scheduled_at, completed_at, estimated_hours, created_at, updated_at)"
                " values (%s, %s, null, %s, 'completed', %s, %s, 1, %s, %s)"
            ).format(src),
            [
                (uuid.uuid4(), org, customer, completed, completed, completed, completed)
                for _ in range(JOBS_WITHOUT_ORDER)
            ],
        )
    conn.execute(sql.SQL("analyze {}.jobs").format(src))
    view = sql.Identifier(scratch_dashboard.settings.schema, "daily_energy")
    conn.execute("set work_mem = '64kB'")
    conn.execute("set max_parallel_workers_per_gather = 0")  # as in INSERT ... SELECT
    conn.execute("set enable_mergejoin = off")  # the plan the recompute gets at 100x
    (explained,) = conn.execute(
        sql.SQL("explain (analyze, format json) select * from {}").format(view)
    ).fetchone()  # type: ignore[misc]
    batches = [n["Hash Batches"] for n in _nodes(explained[0]["Plan"]) if "Hash Batches" in n]
    assert batches, "no hash join in the plan: the check would prove nothing"
    assert max(batches) <= MAX_BATCHES, batches
    # And the jobs without an order are still counted: their day has a row, 0 kWh added.
    row = conn.execute(
        sql.SQL("select count(*) from {} where organization_id = %s and business_day = %s").format(
            view
        ),
        (org, dt.date(2026, 1, 5)),
    ).fetchone()
    assert row == (1,)


def test_one_organizations_days_of_energy_reach_the_jobs_by_index(
    scratch_dashboard: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    """Both parts of daily_energy read completed_jobs: the live half and the incremental
    refresh filter it by organization and day, which must reach the jobs index in each part
    (a CTE read twice and materialized would scan every job)."""
    view = sql.Identifier(scratch_dashboard.settings.schema, "daily_energy")
    org = scratch_dashboard.organization_ids[0]
    conn.execute("reset all")
    conn.execute("set max_parallel_workers_per_gather = 0")
    (explained,) = conn.execute(
        sql.SQL(
            "explain (format json) select * from {} where organization_id = %s"
            " and business_day between %s and %s"
        ).format(view),
        (org, dt.date(2026, 1, 1), dt.date(2026, 1, 7)),
    ).fetchone()  # type: ignore[misc]
    jobs_scans = [
        n["Node Type"] for n in _nodes(explained[0]["Plan"]) if n.get("Relation Name") == "jobs"
    ]
    assert len(jobs_scans) == 2, jobs_scans
    assert "Seq Scan" not in jobs_scans, jobs_scans


def test_a_job_edit_recomputes_no_time_entries(
    scratch_dashboard: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    """An incremental refresh recomputes each changed (organization, day) from its daily view
    whole. While hours worked were a fact of daily_jobs, every rescheduled or completed job
    re-read all time entries of its days, each probing its job (~80% of mv_daily_jobs'
    refresh at 100x). Hours are daily_labor's now: the jobs view's rows for an organization's
    days read no time entry, and daily_labor's reach them through the worked-day index."""
    org = scratch_dashboard.organization_ids[0]
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 9)]
    conn.execute("reset all")
    relations = {}
    for name in ("daily_jobs", "daily_labor"):
        (explained,) = conn.execute(
            sql.SQL(
                "explain (format json) select * from {} where organization_id = %s"
                " and business_day = any(%s)"
            ).format(sql.Identifier(scratch_dashboard.settings.schema, name)),
            (org, days),
        ).fetchone()  # type: ignore[misc]
        relations[name] = {
            (n.get("Relation Name"), n["Node Type"])
            for n in _nodes(explained[0]["Plan"])
            if n.get("Relation Name")
        }
    assert {r for r, _ in relations["daily_jobs"]} == {"jobs"}, relations["daily_jobs"]
    entries = {kind for r, kind in relations["daily_labor"] if r == "job_time_entries"}
    assert entries and "Seq Scan" not in entries, relations["daily_labor"]
