"""Issue 8 §2: a materialized view that is missing, was never refreshed, or whose last refresh
failed is read live: the answer stays exact, never an exception, and freshness says why.

Each case breaks one view of the module's ``scratch_dashboard`` and puts it back afterwards
(a dbt run for a dropped view). A real failed dbt run is in test_refresh_faults.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.ops.dbt_runner import run_dbt
from tests.python.faults_support import recent_ranges, relation, relation_kind
from tests.python.helpers import Dashboard, assert_matches_naive

Conn = psycopg.Connection[Any]


# -- §2 a view missing, never refreshed, or failed -----------------------------------------


def drop_view(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    kind = relation_kind(conn, dashboard, view)
    conn.execute(sql.SQL("drop {} {}").format(kind, relation(dashboard, view)))

    def restore() -> None:
        run_dbt(["run", "--select", view], dashboard.settings)

    return restore


def forget_refresh(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    table = relation(dashboard, "dashquery_watermarks")
    delete = sql.SQL("delete from {} where view_name = %s returning *").format(table)
    row = conn.execute(delete, (view,)).fetchone()
    assert row is not None

    def restore() -> None:
        values = sql.SQL(", ").join(sql.Placeholder() * len(row))
        conn.execute(sql.SQL("insert into {} values ({})").format(table, values), row)

    return restore


def fail_refresh(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    update = sql.SQL("update {} set last_failed_at = {}, last_error = {} where view_name = %s")
    table = relation(dashboard, "dashquery_watermarks")
    conn.execute(update.format(table, sql.SQL("now()"), sql.Literal("test")), (view,))

    def restore() -> None:
        conn.execute(update.format(table, sql.NULL, sql.NULL), (view,))

    return restore


@pytest.mark.parametrize(
    ("break_view", "block", "view", "reason"),
    [
        (drop_view, "energy", "mv_daily_energy", "mv_daily_energy is missing"),
        (forget_refresh, "jobs", "mv_daily_jobs", "mv_daily_jobs was never refreshed"),
        (fail_refresh, "pipeline", "mv_daily_pipeline", "the last refresh of mv_daily_pipeline"),
        (drop_view, "current_state", "mv_current_state", "mv_current_state is missing"),
    ],
)
def test_a_broken_view_is_read_live_and_says_why(
    scratch_dashboard: Dashboard,
    break_view: Callable[[Conn, Dashboard, str], Callable[[], None]],
    block: str,
    view: str,
    reason: str,
) -> None:
    settings = scratch_dashboard.settings
    org = scratch_dashboard.organization_ids[0]
    ranges = recent_ranges(scratch_dashboard)
    with (
        Client(settings=settings, cache=False) as seasoned,
        scratch_dashboard.connect() as conn,
    ):
        seasoned.get_metrics(org, *ranges[0])  # has found the views and prepared its statement
        restore = break_view(conn, scratch_dashboard, view)
        try:
            with Client(settings=settings, cache=False) as fresh:
                for client in (seasoned, fresh):
                    for date_from, date_to in ranges:
                        result = client.get_metrics(org, date_from, date_to)
                        assert_matches_naive(conn, settings, result)
                        live = {b: f.live_reason for b, f in result.freshness.items()}
                        assert reason in (live.pop(block) or "")
                        assert set(live.values()) == {None}, "other blocks stay materialized"
        finally:
            restore()
    with Client(settings=settings, cache=False) as after:
        assert after.get_metrics(org, *ranges[0]).freshness[block].live_reason is None
