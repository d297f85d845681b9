"""Issue 14 item 1: month and year rollups beside each daily block, on real servers.

The read path sums a range before the split from at most ~2 x 30 day rows, 2 x 11 month
rows and the whole years (``dashquery.read.rollup_sql``), so a rollup that is wrong, stale
or cut at the wrong edge is a wrong number. Every check here compares with an oracle written
independently of the dbt macros: the rollups against the daily view's own month and year
sums, the reads against the naive query over the application tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.catalog import CHANGES_TABLE, DAILY_BLOCKS, ROLLUP_GRAIN, ROLLUP_START, DailyBlock
from dashquery.ops.dbt_runner import run_dbt
from dashquery.read.discovery import discover
from dashquery.read.statement import HybridStatements
from tests.python.helpers import (
    Dashboard,
    assert_matches_naive,
    business_today,
    edge_ranges,
    except_all_counts,
    relation_exists,
)
from tests.python.helpers import dbt_run as refresh

Conn = psycopg.Connection[Any]
ORDERS = next(block for block in DAILY_BLOCKS if block.name == "orders")


def rollup_differences(conn: Conn, dashboard: Dashboard) -> dict[str, tuple[int, int]]:
    """Per rollups table: (rows that are not the daily view's month/year sums, sums missing)."""
    schema = sql.Identifier(dashboard.settings.schema)
    found = {}
    for block in DAILY_BLOCKS:
        columns = sql.SQL(", ").join(map(sql.Identifier, block.columns))
        sums = sql.SQL(", ").join(
            sql.SQL("sum({c})").format(c=sql.Identifier(c)) for c in block.columns
        )
        # parenthesised: UNION and EXCEPT bind alike, left to right
        expected = sql.SQL("({})").format(
            sql.SQL(" union all ").join(
                sql.SQL(
                    "select organization_id, {grain}::text,"
                    " date_trunc({grain}, business_day)::date, {sums}"
                    " from {schema}.{view} group by 1, 2, 3"
                ).format(
                    grain=sql.Literal(grain),
                    sums=sums,
                    schema=schema,
                    view=sql.Identifier(block.view),
                )
                for grain in ("month", "year")
            )
        )
        stored = sql.SQL("select organization_id, {g}, {p}, {cols} from {schema}.{rollups}").format(
            g=sql.Identifier(ROLLUP_GRAIN),
            p=sql.Identifier(ROLLUP_START),
            cols=columns,
            schema=schema,
            rollups=sql.Identifier(block.rollups),
        )
        differences = except_all_counts(conn, stored, expected)
        if differences != (0, 0):
            found[block.rollups] = differences
            sample = conn.execute(
                sql.SQL("({stored} except all {expected}) limit 3").format(
                    stored=stored, expected=expected
                )
            ).fetchall()
            print(block.rollups, "not the daily view's sums:", sample)
    return found


@pytest.fixture
def conn(scratch_dashboard: Dashboard) -> Any:
    with scratch_dashboard.connect() as connection:
        yield connection


def test_every_block_keeps_exact_month_and_year_sums_under_the_catalog_name(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    for block in DAILY_BLOCKS:
        assert relation_exists(conn, scratch_dashboard, block.rollups), block.rollups
        key = conn.execute(
            "select pg_get_indexdef(i.indexrelid) from pg_index i join pg_class c"
            " on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = %s and i.indisunique",
            (scratch_dashboard.settings.schema, block.rollups + "__key"),
        ).fetchone()
        assert key and f"(organization_id, {ROLLUP_GRAIN}, {ROLLUP_START})" in key[0]
    grains = conn.execute(
        sql.SQL("select {g}, count(*) from {s}.{r} group by 1").format(
            g=sql.Identifier(ROLLUP_GRAIN),
            s=sql.Identifier(scratch_dashboard.settings.schema),
            r=sql.Identifier(ORDERS.rollups),
        )
    ).fetchall()
    counts = dict(grains)
    assert counts.get("year", 0) >= 2 and counts.get("month", 0) >= 24, counts
    assert rollup_differences(conn, scratch_dashboard) == {}


def test_the_hybrid_statement_reads_each_blocks_rollups(dashboard: Dashboard) -> None:
    with dashboard.connect() as conn:
        deployment = discover(dashboard.settings, conn)
        statements = HybridStatements(
            dashboard.settings, deployment.available_views, changes=deployment.has_changes
        )
        assert all(statements.has_rollups(block) for block in DAILY_BLOCKS)
        today = business_today(dashboard.settings)
        params = {
            "organization_id": dashboard.organization_ids[0],
            "date_from": today - dt.timedelta(days=729),
            "date_to": today,
        }
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                sql.SQL("explain (analyze, costs off) {}").format(statements.metrics()), params
            )
        )
    for block in DAILY_BLOCKS:
        assert f"on {block.rollups}" in plan, block.rollups
    # a two-year range reads whole years and months, never hundreds of day rows per block
    day_rows = [
        int(line.split("rows=")[1].split()[0])
        for line in plan.splitlines()
        if any(f"on {b.materialized_view} " in line for b in DAILY_BLOCKS) and "rows=" in line
    ]
    assert day_rows and max(day_rows) <= 62, day_rows


def test_ranges_cut_at_month_and_year_edges_are_exact(dashboard: Dashboard) -> None:
    client = Client(settings=dashboard.settings, cache=False)
    today = business_today(dashboard.settings)
    with dashboard.connect() as conn:
        for org in dashboard.organization_ids[:2]:
            for date_from, date_to in edge_ranges(today):
                assert_matches_naive(
                    conn, dashboard.settings, client.get_metrics(org, date_from, date_to)
                )


def test_back_dated_changes_inside_whole_years_are_exact_before_and_after_the_refresh(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    settings = scratch_dashboard.settings
    org = scratch_dashboard.organization_ids[0]
    src = sql.Identifier(settings.source_schema)
    old = "created_at < now() - interval '400 days' and organization_id = %s"
    # an order moved 45 days (across months), three soft-deleted, one imported 600 days back
    conn.execute(
        sql.SQL(
            "update {a}.orders set created_at = created_at - interval '45 days' where id ="
            f" (select id from {{a}}.orders where {old} order by created_at desc limit 1)"
        ).format(a=src),
        (org,),
    )
    conn.execute(
        sql.SQL(
            "update {a}.orders set deleted_at = now() where id in"
            f" (select id from {{a}}.orders where {old} order by created_at limit 3)"
        ).format(a=src),
        (org,),
    )
    conn.execute(
        sql.SQL(
            "insert into {a}.orders select gen_random_uuid(), organization_id, customer_id,"
            " 'delivered', 123456, now() - interval '600 days', now(), null from {a}.orders"
            " where organization_id = %s limit 1"
        ).format(a=src),
        (org,),
    )
    client = Client(settings=settings, cache=False)
    today = business_today(settings)
    for date_from, date_to in edge_ranges(today):
        result = client.get_metrics(org, date_from, date_to)
        assert_matches_naive(conn, settings, result)
    whole = client.get_metrics(org, today - dt.timedelta(days=3659), today)
    assert whole.freshness["orders"].changed_days_live >= 3
    refresh(scratch_dashboard, "tag:15min")
    assert rollup_differences(conn, scratch_dashboard) == {}
    left = conn.execute(
        sql.SQL("select count(*) from {}.{} where daily_view = %s").format(
            sql.Identifier(settings.schema), sql.Identifier(CHANGES_TABLE)
        ),
        (ORDERS.view,),
    ).fetchone()
    assert left == (0,)
    for date_from, date_to in edge_ranges(today):
        assert_matches_naive(conn, settings, client.get_metrics(org, date_from, date_to))


def damage(conn: Conn, dashboard: Dashboard, block: DailyBlock) -> None:
    conn.execute(
        sql.SQL(
            "update {s}.{r} set {c} = {c} + 1 where ctid = (select ctid from {s}.{r}"
            " where {g} = 'year' limit 1)"
        ).format(
            s=sql.Identifier(dashboard.settings.schema),
            r=sql.Identifier(block.rollups),
            c=sql.Identifier(block.columns[0]),
            g=sql.Identifier(ROLLUP_GRAIN),
        )
    )


def test_a_damaged_rollup_fails_dbt_test_and_a_full_refresh_repairs_it(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    damage(conn, scratch_dashboard, ORDERS)
    assert rollup_differences(conn, scratch_dashboard) == {ORDERS.rollups: (1, 1)}
    tested = run_dbt(
        ["test", "--select", ORDERS.materialized_view], scratch_dashboard.settings, check=False
    )
    assert tested.returncode != 0
    assert "matches_rollups_" + ORDERS.materialized_view in tested.output
    refresh(scratch_dashboard, ORDERS.materialized_view, "--full-refresh")
    assert rollup_differences(conn, scratch_dashboard) == {}


def test_without_rollups_the_read_sums_day_rows_and_the_next_run_rebuilds_them(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    settings = scratch_dashboard.settings
    org = scratch_dashboard.organization_ids[1]
    today = business_today(settings)
    # the concurrent strategy keeps no rollups: the rebuild's swap drops them
    refresh(
        scratch_dashboard,
        ORDERS.materialized_view,
        dashquery_refresh_strategy={ORDERS.materialized_view: "concurrent"},
    )
    assert not relation_exists(conn, scratch_dashboard, ORDERS.rollups)
    client = Client(settings=settings, cache=False)
    for date_from, date_to in edge_ranges(today)[:7]:
        result = client.get_metrics(org, date_from, date_to)
        assert result.freshness["orders"].live_reason is None
        assert_matches_naive(conn, settings, result)
    refresh(scratch_dashboard, ORDERS.materialized_view)
    assert relation_exists(conn, scratch_dashboard, ORDERS.rollups)
    # dropped by hand: read from the day rows meanwhile, rebuilt by the next run
    conn.execute(
        sql.SQL("drop table {}.{}").format(
            sql.Identifier(settings.schema), sql.Identifier(ORDERS.rollups)
        )
    )
    client = Client(settings=settings, cache=False)
    assert_matches_naive(
        conn, settings, client.get_metrics(org, today - dt.timedelta(days=729), today)
    )
    assert "REBUILD" in refresh(scratch_dashboard, ORDERS.materialized_view).output
    assert rollup_differences(conn, scratch_dashboard) == {}


def test_read_sessions_never_plan_parallel_workers(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    """A Gather in a read's plan costs worker start-ups (and on ten years of history the
    generic plan preferred a parallel scan of a whole index over expression-index probes:
    85 ms for a 1-day read). With parallelism made free for the database, the plan the
    client's own sessions get must still have none."""
    database = sql.Identifier(conn.info.dbname)
    cheap = {
        "parallel_setup_cost": "0",
        "parallel_tuple_cost": "0",
        "min_parallel_table_scan_size": "0",
        "min_parallel_index_scan_size": "0",
    }
    for name, value in cheap.items():
        conn.execute(
            sql.SQL("alter database {} set {} = {}").format(
                database, sql.Identifier(name), sql.Literal(value)
            )
        )
    try:
        today = business_today(scratch_dashboard.settings)
        args = [scratch_dashboard.organization_ids[0], today - dt.timedelta(days=729), today]
        with dashboard_client(scratch_dashboard) as client, client.pool.connection() as read:
            _, statement = client.computer.statements(read)
            plan = "\n".join(
                row[0] for row in psycopg.RawCursor(read).execute(b"explain " + statement, args)
            )
            assert read.execute("show parallel_setup_cost").fetchone() == ("0",)
        assert "Gather" not in plan
        with scratch_dashboard.connect() as other:  # the database's default: parallel
            other_plan = "\n".join(
                row[0] for row in psycopg.RawCursor(other).execute(b"explain " + statement, args)
            )
        assert "Gather" in other_plan, "parallelism was not cheap enough to test anything"
    finally:
        conn.execute(sql.SQL("alter database {} reset all").format(database))


def dashboard_client(dashboard: Dashboard, **options: Any) -> Client:
    return Client(settings=dashboard.settings, cache=False, **options)


def test_read_sessions_never_plan_a_custom_plan(scratch_dashboard: Dashboard) -> None:
    """The hybrid statement is written for its generic plan, and planning it with a
    request's values costs ~13 ms at 10x (several times its execution). Under PostgreSQL's
    default plan_cache_mode the first five executions of every prepared statement are
    custom plans, on every new pool connection: the read sessions must never make one."""
    today = business_today(scratch_dashboard.settings)
    org = scratch_dashboard.organization_ids[0]
    # One connection: pg_prepared_statements shows only its own session's statements.
    with dashboard_client(scratch_dashboard, pool_size=1) as client:
        for days in (1, 30, 730, 1, 3650, 7, 730):
            client.compute(org, today - dt.timedelta(days=days - 1), today)
        with client.pool.connection() as read:
            mode = read.execute("show plan_cache_mode").fetchone()
            plans = read.execute(
                "select sum(generic_plans)::int, sum(custom_plans)::int from pg_prepared_statements"
            ).fetchone()
    assert plans is not None
    generic, custom = plans
    assert custom == 0
    assert generic >= 7, "the reads did not run as prepared statements"
    assert mode == ("force_generic_plan",)
