"""Issue 13 item 3: the incremental refresh strategy of dashboard_mv, on real servers.

The module's own database (``scratch_dashboard``) is built by ``dbt build`` with capture on
(the default) and the project's default strategy (incremental: every materialized relation
is a table). Changes go through the application tables, so the change rows are the real
capture triggers'. Each check compares every materialized relation with its daily view, row
for row, both ways (EXCEPT), and counts the change rows left.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import psycopg
import pytest

from dashquery import Client
from dashquery.catalog import (
    CHANGES_TABLE,
    CURRENT_STATE,
    CUSTOMER_DAYS,
    DAILY_BLOCKS,
    DEPLOYMENT_TABLE,
    MATERIALIZED_VIEWS,
)
from dashquery.ops.dbt_runner import DbtResult
from tests.python.helpers import Dashboard, assert_matches_naive, business_today
from tests.python.helpers import dbt_run as refresh

Conn = psycopg.Connection[Any]

# Each materialized relation and what it must equal: its daily view, or (customer days)
# the model's own aggregation of it.
EXPECTED = {
    **{block.materialized_view: f"select * from {{s}}.{block.view}" for block in DAILY_BLOCKS},
    CURRENT_STATE.materialized_view: f"select * from {{s}}.{CURRENT_STATE.view}",
    CUSTOMER_DAYS.materialized_view: (
        "select organization_id, customer_id,"
        " range_agg(daterange(business_day, business_day, '[]')) as order_days"
        f" from {{s}}.{CUSTOMER_DAYS.view} group by 1, 2"
    ),
}
DAILY_VIEW = {
    **{block.materialized_view: block.view for block in DAILY_BLOCKS},
    CURRENT_STATE.materialized_view: CURRENT_STATE.view,
    CUSTOMER_DAYS.materialized_view: CUSTOMER_DAYS.view,
}


def q(dashboard: Dashboard, text: str) -> str:
    """Text with {s} = the view schema and {a} = the application schema, quoted."""
    schema = dashboard.settings.schema.replace('"', '""')
    source = dashboard.settings.source_schema.replace('"', '""')
    return text.replace("{s}", f'"{schema}"').replace("{a}", f'"{source}"')


def differences(conn: Conn, dashboard: Dashboard) -> dict[str, tuple[int, int]]:
    """Per materialized relation: (rows not in its daily view, daily rows not in it)."""
    found = {}
    for mv, expected in EXPECTED.items():
        query = q(
            dashboard,
            f"select (select count(*) from (select * from {{s}}.{mv} except {expected}) as a),"
            f" (select count(*) from ({expected} except select * from {{s}}.{mv}) as b)",
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        if row != (0, 0):
            found[mv] = (int(row[0]), int(row[1]))
    return found


def change_rows(conn: Conn, dashboard: Dashboard, daily_view: str | None = None) -> int:
    query = q(dashboard, f"select count(*) from {{s}}.{CHANGES_TABLE}")
    if daily_view is None:
        row = conn.execute(query).fetchone()
    else:
        row = conn.execute(query + " where daily_view = %s", (daily_view,)).fetchone()
    assert row is not None
    return int(row[0])


def relkinds(conn: Conn, dashboard: Dashboard) -> dict[str, str]:
    rows = conn.execute(
        "select c.relname, c.relkind::text from pg_class c join pg_namespace n"
        " on n.oid = c.relnamespace where n.nspname = %s and c.relname = any(%s)",
        (dashboard.settings.schema, list(MATERIALIZED_VIEWS)),
    ).fetchall()
    return dict(rows)


def random_back_dated_changes(conn: Conn, dashboard: Dashboard, rng: random.Random) -> None:
    """Inserts, updates moving rows between days, soft deletes, undeletes and deletes on every
    table a block reads, most of them dated weeks to years back, one transaction each."""
    orgs = [str(org) for org in dashboard.organization_ids[:-1]]

    def run(text: str, *params: Any) -> None:
        conn.execute(q(dashboard, text), params)

    for _ in range(12):
        org = rng.choice(orgs)
        back = f"{rng.randint(5, 700)} days"
        shift = f"{rng.randint(-40, 40)} days"
        pick = rng.randrange(9)
        where = "organization_id = %s and created_at < now() - %s::interval"
        if pick == 0:  # an order moved to another day
            run(
                "update {a}.orders set created_at = created_at + %s::interval"
                f" where id = (select id from {{a}}.orders where {where}"
                " order by created_at desc limit 1)",
                shift,
                org,
                back,
            )
        elif pick == 1:  # soft delete and undelete of orders
            run(
                "update {a}.orders set deleted_at = case when deleted_at is null then now() end"
                f" where id in (select id from {{a}}.orders where {where}"
                " order by created_at desc limit 3)",
                org,
                back,
            )
        elif pick == 2:  # an order imported with an old date, with one line
            run(
                "with o as (insert into {a}.orders select gen_random_uuid(), organization_id,"
                " customer_id, 'delivered', 5000, created_at, now(), null from {a}.orders"
                f" where {where} order by created_at desc limit 1 returning id, organization_id)"
                " insert into {a}.order_items select gen_random_uuid(), o.organization_id, o.id,"
                " p.id, 2, 2500, 5000, now() from o cross join lateral (select id from"
                " {a}.products where organization_id = o.organization_id limit 1) p",
                org,
                back,
            )
        elif pick == 3:  # a job rescheduled / completed on another day
            run(
                "update {a}.jobs set scheduled_at = scheduled_at + %s::interval,"
                " completed_at = completed_at + %s::interval"
                f" where id = (select id from {{a}}.jobs where {where}"
                " order by created_at desc limit 1)",
                shift,
                shift,
                org,
                back,
            )
        elif pick == 4:  # a job with time entries deleted
            run(
                f"delete from {{a}}.job_time_entries where job_id = (select id from {{a}}.jobs"
                f" where {where} order by created_at desc limit 1)",
                org,
                back,
            )
        elif pick == 5:  # an opportunity lost with an old close date
            run(
                "update {a}.opportunities set stage = 'lost', closed_at = created_at + '3 days'"
                f" where id = (select id from {{a}}.opportunities where {where}"
                " order by created_at desc limit 1)",
                org,
                back,
            )
        elif pick == 6:  # a product's capacity under old jobs
            run(
                "update {a}.products set specifications = specifications ||"
                " jsonb_build_object('capacity_kwh', %s::numeric)"
                " where id = (select id from {a}.products where organization_id = %s limit 1)",
                rng.randint(1, 30),
                org,
            )
        elif pick == 7:  # warranty claims resolved / soft-deleted
            run(
                "update {a}.warranty_claims set status = 'resolved',"
                " resolved_at = created_at + '2 days', deleted_at = null"
                f" where id = (select id from {{a}}.warranty_claims where {where}"
                " order by created_at desc limit 1)",
                org,
                back,
            )
        else:  # customers change status (current_state)
            run(
                "update {a}.customers set status = case status when 'active' then 'inactive'"
                " else 'active' end where id = (select id from {a}.customers"
                " where organization_id = %s limit 1)",
                org,
            )


@pytest.fixture
def conn(scratch_dashboard: Dashboard) -> Any:
    with scratch_dashboard.connect() as connection:
        yield connection


def test_every_relation_is_a_table_and_refreshes_incrementally(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    assert relkinds(conn, scratch_dashboard) == dict.fromkeys(MATERIALIZED_VIEWS, "r")
    result = refresh(scratch_dashboard, "materialized")
    # The refresh statement reports its own transaction's isolation level.
    assert result.output.count("REFRESH incremental (repeatable read)") == len(MATERIALIZED_VIEWS)


def test_random_back_dated_changes_then_an_incremental_refresh_is_exact(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    rng = random.Random(1313)
    for _ in range(3):
        random_back_dated_changes(conn, scratch_dashboard, rng)
        assert change_rows(conn, scratch_dashboard) > 0
        stale = differences(conn, scratch_dashboard)
        assert stale, "the changes changed no daily view: the test proves nothing"
        result = refresh(scratch_dashboard, "materialized")
        assert result.output.count("REFRESH incremental") == len(MATERIALIZED_VIEWS)
        assert differences(conn, scratch_dashboard) == {}
        # Nothing ran concurrently, so its snapshot saw every change row: all consumed.
        assert change_rows(conn, scratch_dashboard) == 0
    with Client(settings=scratch_dashboard.settings, cache=False) as client:
        today = business_today(scratch_dashboard.settings)
        for org in scratch_dashboard.organization_ids:
            result = client.compute(org, today.replace(year=today.year - 2), today)
            assert_matches_naive(conn, scratch_dashboard.settings, result)


def test_row_count_follows_the_incremental_deltas(scratch_dashboard: Dashboard, conn: Conn) -> None:
    for mv in MATERIALIZED_VIEWS:
        row = conn.execute(
            q(
                scratch_dashboard,
                f"select (select row_count from {{s}}.dashquery_watermarks where view_name = %s),"
                f" (select count(*) from {{s}}.{mv})",
            ),
            (mv,),
        ).fetchone()
        assert row is not None and row[0] == row[1], mv


def waiting_on_advisory_lock(conn: Conn, key: int) -> bool:
    row = conn.execute(
        "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        " and ((classid::bigint << 32) | objid::bigint) = %s",
        (key,),
    ).fetchone()
    return row is not None and row[0] > 0


@pytest.mark.parametrize("strategy", ["incremental", "concurrent"])
def test_a_change_committed_during_the_refresh_is_kept_and_read_exactly(
    scratch_dashboard: Dashboard, conn: Conn, strategy: str
) -> None:
    """The refresh is held inside its transaction, after its snapshot (a test-only hook
    waits on an advisory lock the test holds); meanwhile a writer commits a back-dated order.
    The refresh must neither recompute nor consume it: its change row is still there, the
    read is exact, and the next refresh consumes it."""
    settings = scratch_dashboard.settings
    mv, view = DAILY_BLOCKS[0].materialized_view, DAILY_BLOCKS[0].view
    key = 913_001
    conn.execute("create table if not exists public.dq_refresh_probe (isolation text)")
    conn.execute("truncate public.dq_refresh_probe")
    hook = (
        "insert into public.dq_refresh_probe"
        " values (current_setting('transaction_isolation'));"
        f" select pg_advisory_xact_lock_shared({key});"
    )
    if strategy == "concurrent":
        refresh(scratch_dashboard, mv, dashquery_refresh_strategy=strategy)  # rebuild as an mv
        assert relkinds(conn, scratch_dashboard)[mv] == "m"
    org = scratch_dashboard.organization_ids[0]
    results: list[DbtResult] = []
    with scratch_dashboard.connect() as holder:
        holder.execute("select pg_advisory_lock(%s)", (key,))
        runner = threading.Thread(
            target=lambda: results.append(
                refresh(
                    scratch_dashboard,
                    mv,
                    dashquery_refresh_test_hook=hook,
                    dashquery_refresh_strategy=strategy,
                )
            )
        )
        runner.start()
        try:
            deadline = time.monotonic() + 120
            while not waiting_on_advisory_lock(conn, key):
                assert time.monotonic() < deadline and runner.is_alive(), "the refresh never waited"
                time.sleep(0.1)
            # The writer: an order imported with a date 300 days back, committed now.
            row = conn.execute(
                q(
                    scratch_dashboard,
                    "with o as (insert into {a}.orders select gen_random_uuid(), organization_id,"
                    " customer_id, 'delivered', 7777, created_at, now(), null from {a}.orders"
                    " where organization_id = %s and created_at < now() - interval '300 days'"
                    " order by created_at desc limit 1 returning created_at)"
                    " select pg_current_xact_id()::text::bigint, min(created_at) from o",
                ),
                (org,),
            ).fetchone()
            assert row is not None
            writer_xact, created_at = row
        finally:
            holder.execute("select pg_advisory_unlock(%s)", (key,))
            runner.join(timeout=300)
    assert results and f"REFRESH {strategy} (repeatable read)" in results[0].output
    assert conn.execute("select isolation from public.dq_refresh_probe").fetchall() == [
        ("repeatable read",)
    ]
    kept = conn.execute(
        q(
            scratch_dashboard,
            f"select count(*) from {{s}}.{CHANGES_TABLE}"
            " where daily_view = %s and xact_id::text::bigint = %s",
        ),
        (view, writer_xact),
    ).fetchone()
    assert kept == (1,), "the change committed during the refresh was consumed"
    # The refreshed data is the snapshot's: it lacks the writer's order, whose day is read
    # live because of its change row, so the read is exact.
    assert mv in differences(conn, scratch_dashboard)
    day = (created_at.astimezone(settings.zone)).date()
    with Client(settings=settings, cache=False) as client:
        result = client.compute(org, day.replace(day=1), business_today(settings))
        assert result.freshness["orders"].changed_days_live >= 1
        assert_matches_naive(conn, settings, result)
    refresh(scratch_dashboard, mv, dashquery_refresh_strategy=strategy)
    assert change_rows(conn, scratch_dashboard, view) == 0
    assert mv not in differences(conn, scratch_dashboard)
    if strategy == "concurrent":
        refresh(scratch_dashboard, mv)  # back to the project's strategy: rebuilt as a table
        assert relkinds(conn, scratch_dashboard)[mv] == "r"
        assert change_rows(conn, scratch_dashboard, view) == 0


def test_rebuild_and_strategy_switch_consume_the_changes(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    rng = random.Random(77)
    mv = DAILY_BLOCKS[2].materialized_view  # pipeline
    view = DAILY_VIEW[mv]

    def change_pipeline() -> None:
        conn.execute(
            q(
                scratch_dashboard,
                "update {a}.opportunities set created_at = created_at - interval '1 day'"
                " where id in (select id from {a}.opportunities where deleted_at is null"
                " order by md5(id::text || %s) limit 5)",
            ),
            (str(rng.random()),),
        )
        assert change_rows(conn, scratch_dashboard, view) > 0
        assert mv in differences(conn, scratch_dashboard)

    change_pipeline()
    result = refresh(scratch_dashboard, mv, "--full-refresh")
    assert "REBUILD (repeatable read)" in result.output
    assert relkinds(conn, scratch_dashboard)[mv] == "r"
    assert change_rows(conn, scratch_dashboard, view) == 0
    assert mv not in differences(conn, scratch_dashboard)
    indexes = conn.execute(
        "select indexname from pg_indexes where schemaname = %s and tablename = %s",
        (scratch_dashboard.settings.schema, mv),
    ).fetchall()
    assert indexes == [(f"{mv}__key",)]

    # Switching the strategy is a definition change: rebuilt beside and swapped, both ways.
    for strategy, kind in (("concurrent", "m"), ("incremental", "r")):
        change_pipeline()
        result = refresh(scratch_dashboard, mv, dashquery_refresh_strategy=strategy)
        assert "REBUILD (repeatable read)" in result.output
        assert relkinds(conn, scratch_dashboard)[mv] == kind
        assert change_rows(conn, scratch_dashboard, view) == 0
        assert mv not in differences(conn, scratch_dashboard)

    # The concurrent strategy consumes the change rows its refresh covered.
    refresh(scratch_dashboard, mv, dashquery_refresh_strategy="concurrent")
    change_pipeline()
    result = refresh(scratch_dashboard, mv, dashquery_refresh_strategy="concurrent")
    assert "REFRESH concurrent (repeatable read)" in result.output
    assert change_rows(conn, scratch_dashboard, view) == 0
    assert mv not in differences(conn, scratch_dashboard)
    refresh(scratch_dashboard, mv)
    assert relkinds(conn, scratch_dashboard)[mv] == "r"


def test_when_capture_does_not_cover_the_interval_everything_is_recomputed(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    """A change the triggers did not see (session_replication_role = replica, as logical
    replication applies rows) with capture recorded as switched on after the last refresh:
    the change table cannot know, so the incremental strategy recomputes every row."""
    mv = DAILY_BLOCKS[0].materialized_view
    deployment = q(scratch_dashboard, f"{{s}}.{DEPLOYMENT_TABLE}")
    (since,) = conn.execute(f"select capture_since from {deployment}").fetchone() or (None,)
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            q(
                scratch_dashboard,
                "update {a}.orders set total_cents = total_cents + 1000 where id in"
                " (select id from {a}.orders where deleted_at is null and status <> 'cancelled'"
                " and created_at < now() - interval '50 days' order by id limit 3)",
            )
        )
    assert change_rows(conn, scratch_dashboard, DAILY_VIEW[mv]) == 0
    assert mv in differences(conn, scratch_dashboard)
    conn.execute(f"update {deployment} set capture_since = now()")
    try:
        result = refresh(scratch_dashboard, mv)
        assert "REFRESH recompute all (repeatable read)" in result.output
        assert mv not in differences(conn, scratch_dashboard)
        # From then on capture covers the interval again: incremental.
        result = refresh(scratch_dashboard, mv)
        assert "REFRESH incremental (repeatable read)" in result.output
    finally:
        conn.execute(f"update {deployment} set capture_since = %s", (since,))


def test_a_large_change_set_is_recomputed_whole_and_exact(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    """More change rows than dashquery_incremental_max_rows (here lowered to 5) take the
    recompute-all path (a bulk load: per-group recomputes would cost more than one scan),
    consume every change row and leave the relation equal to its daily view."""
    mv = DAILY_BLOCKS[0].materialized_view
    conn.execute(
        q(
            scratch_dashboard,
            "update {a}.orders set total_cents = total_cents + 7 where id in"
            " (select id from {a}.orders where deleted_at is null"
            " and created_at < now() - interval '30 days' order by id limit 40)",
        )
    )
    assert change_rows(conn, scratch_dashboard, DAILY_VIEW[mv]) > 5
    assert mv in differences(conn, scratch_dashboard)
    result = refresh(
        scratch_dashboard, mv, dashquery_incremental_max_rows=5, dashquery_incremental_max_share=0
    )
    assert "REFRESH recompute all (repeatable read)" in result.output
    assert mv not in differences(conn, scratch_dashboard)
    assert change_rows(conn, scratch_dashboard, DAILY_VIEW[mv]) == 0
    # A small change set stays incremental.
    conn.execute(
        q(
            scratch_dashboard,
            "update {a}.orders set total_cents = total_cents + 7 where id ="
            " (select id from {a}.orders where deleted_at is null order by id limit 1)",
        )
    )
    result = refresh(scratch_dashboard, mv)
    assert "REFRESH incremental (repeatable read)" in result.output
    assert mv not in differences(conn, scratch_dashboard)


def test_a_long_change_table_is_read_by_daily_view_through_an_index(
    scratch_dashboard: Dashboard, conn: Conn
) -> None:
    """A refresh reads and deletes its daily view's change rows (WHERE daily_view = ...). The
    primary key starts with organization_id, so without dashquery_changes_daily_view each of
    those statements scans the whole table, and after a bulk load the table stays that long
    (VACUUM seldom truncates it): every block's refresh would pay for every other's rows."""
    table = q(scratch_dashboard, f"{{s}}.{CHANGES_TABLE}")
    others = "dq_bulk_load_test"  # no daily view: no refresh consumes them
    try:
        conn.execute(
            f"insert into {table} (organization_id, daily_view, business_day)"
            " select gen_random_uuid(), %s, date '2020-01-01' + (n %% 2000)"
            " from generate_series(1, 30000) as n",
            (others,),
        )
        conn.execute(f"analyze {table}")
        for statement in (
            f"select distinct organization_id, business_day from {table} where daily_view = %s",
            f"delete from {table} where daily_view = %s",
        ):
            (plan,) = conn.execute(
                f"explain (format json) {statement}", (DAILY_BLOCKS[0].view,)
            ).fetchone()
            text = json.dumps(plan)
            assert "dashquery_changes_daily_view" in text, (statement, text)
            assert "Seq Scan" not in text, (statement, text)
    finally:
        conn.execute(f"delete from {table} where daily_view = %s", (others,))
