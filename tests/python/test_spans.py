"""Issue 14 item 1: ``unique_customers`` from the spans of the customers' order days, exact,
at a cost that does not grow with the customer count (macros/spans.sql,
dashquery.read.customers_sql), on real servers.

The oracles are independent of the dbt macros: the spans against first/last days and gaps
computed with window functions over the daily view, the reads against the naive query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.catalog import (
    CUSTOMER_DAYS,
    ROLLUP_GRAIN,
    ROLLUP_START,
    SPANS_AFTER,
    SPANS_BEFORE,
    SPANS_FIRST,
    SPANS_LAST,
    SPANS_LENGTH,
)
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
DAY = dt.timedelta(days=1)


def spans_differences(conn: Conn, dashboard: Dashboard) -> dict[str, tuple[int, int]]:
    """Per spans table: (stored rows not in the oracle, oracle rows not stored)."""
    schema = sql.Identifier(dashboard.settings.schema)
    view = sql.Identifier(CUSTOMER_DAYS.view)
    ends = sql.SQL(
        "with bounds as (select organization_id, customer_id, min(business_day) as first_day,"
        " max(business_day) as last_day from {s}.{v} group by 1, 2),"
        " marks as (select organization_id, first_day as day, 1 as f, 0 as l from bounds"
        " union all select organization_id, last_day, 0, 1 from bounds)"
        " select organization_id, grain, date_trunc(grain, day)::date, sum(f), sum(l)"
        " from marks cross join (values ('day'), ('month'), ('year')) as g (grain)"
        " group by 1, 2, 3"
    ).format(s=schema, v=view)
    stored_ends = sql.SQL(
        "select organization_id, {g}, {p}, {f}, {l} from {s}.{t} where {f} <> 0 or {l} <> 0"
    ).format(
        g=sql.Identifier(ROLLUP_GRAIN),
        p=sql.Identifier(ROLLUP_START),
        f=sql.Identifier(SPANS_FIRST),
        l=sql.Identifier(SPANS_LAST),
        s=schema,
        t=sql.Identifier(CUSTOMER_DAYS.ends),
    )
    gaps = sql.SQL(
        "select organization_id, customer_id, previous, business_day, business_day - previous"
        " from (select *, lag(business_day) over (partition by organization_id, customer_id"
        " order by business_day) as previous from {s}.{v}) as days"
        " where business_day - previous > 1"
    ).format(s=schema, v=view)
    stored_gaps = sql.SQL("select organization_id, customer_id, {a}, {b}, {n} from {s}.{t}").format(
        a=sql.Identifier(SPANS_AFTER),
        b=sql.Identifier(SPANS_BEFORE),
        n=sql.Identifier(SPANS_LENGTH),
        s=schema,
        t=sql.Identifier(CUSTOMER_DAYS.gaps),
    )
    found = {}
    for name, stored, expected in (
        (CUSTOMER_DAYS.ends, stored_ends, ends),
        (CUSTOMER_DAYS.gaps, stored_gaps, gaps),
    ):
        differences = except_all_counts(conn, stored, expected)
        if differences != (0, 0):
            found[name] = differences
    return found


def plan_of(
    conn: Conn, dashboard: Dashboard, org: Any, date_from: dt.date, date_to: dt.date
) -> str:
    deployment = discover(dashboard.settings, conn)
    statements = HybridStatements(
        dashboard.settings, deployment.available_views, changes=deployment.has_changes
    )
    params = {"organization_id": org, "date_from": date_from, "date_to": date_to}
    rows = conn.execute(
        sql.SQL("explain (analyze, costs off, timing off) {}").format(statements.metrics()), params
    )
    return "\n".join(row[0] for row in rows)


def executed(plan: str, relation: str) -> list[str]:
    """The plan's scans of ``relation`` that ran (not 'never executed')."""
    return [
        line
        for line in plan.splitlines()
        if f" on {relation} " in line and "never executed" not in line
    ]


def scans_every_customer(plan: str) -> bool:
    """Whether the every-customer arm ran: a scan of the customer days other than the spans
    path's probe of the live customers (aliased ``stored`` in customers_sql)."""
    return any(" stored " not in line for line in executed(plan, CUSTOMER_DAYS.materialized_view))


@pytest.fixture
def conn(scratch_dashboard: Dashboard) -> Any:
    with scratch_dashboard.connect() as connection:
        yield connection


def test_the_spans_are_the_customers_first_last_days_and_gaps(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    for name in (CUSTOMER_DAYS.ends, CUSTOMER_DAYS.gaps):
        assert relation_exists(conn, scratch_dashboard, name), name
    counts = conn.execute(
        sql.SQL("select (select count(*) from {s}.{e}), (select count(*) from {s}.{g})").format(
            s=sql.Identifier(scratch_dashboard.settings.schema),
            e=sql.Identifier(CUSTOMER_DAYS.ends),
            g=sql.Identifier(CUSTOMER_DAYS.gaps),
        )
    ).fetchone()
    assert counts and counts[0] > 0 and counts[1] > 0, counts
    assert spans_differences(conn, scratch_dashboard) == {}


def test_unique_customers_is_exact_over_ranges_of_every_shape(dashboard: Dashboard) -> None:
    client = Client(settings=dashboard.settings, cache=False)
    today = business_today(dashboard.settings)
    ranges = [
        *edge_ranges(today),
        (today, today),
        (today - 6 * DAY, today),
        (today - 5000 * DAY, today - 4000 * DAY),  # before the history
        (today - 3900 * DAY, today - 300 * DAY),  # from before the history to the past
    ]
    # ranges ending in the past, short and long: the gaps are found by length there
    ranges += [
        (today - (end + length) * DAY, today - end * DAY)
        for end in (30, 200, 400)
        for length in (0, 6, 29, 89, 300)
    ]
    with dashboard.connect() as conn:
        for org in dashboard.organization_ids[:2]:
            for date_from, date_to in ranges:
                assert_matches_naive(
                    conn, dashboard.settings, client.get_metrics(org, date_from, date_to)
                )


def test_with_nothing_changed_the_read_counts_from_the_spans_not_every_customer(
    dashboard: Dashboard,
) -> None:
    today = business_today(dashboard.settings)
    org = dashboard.organization_ids[0]
    mv = CUSTOMER_DAYS.materialized_view
    with dashboard.connect() as conn:
        for date_from, date_to, index in (
            (today - 729 * DAY, today, "by_end"),
            (today - 400 * DAY, today - 300 * DAY, "by_length"),
        ):
            plan = plan_of(conn, dashboard, org, date_from, date_to)
            assert executed(plan, CUSTOMER_DAYS.ends), plan
            # the gaps through the one index for this range (a bitmap scan names it on
            # its own line)
            gaps = [
                line
                for line in plan.splitlines()
                if CUSTOMER_DAYS.gaps in line and "never executed" not in line
            ]
            other = "by_length" if index == "by_end" else "by_end"
            assert any(index in line for line in gaps), gaps
            assert not any(other in line for line in gaps), gaps
            # the relation itself only probed per live customer, never scanned for the
            # organization's customers
            assert not scans_every_customer(plan), executed(plan, mv)


def test_a_changed_day_is_read_by_testing_every_customer_then_the_refresh_fixes_the_spans(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    """Changes that move customers' first and last days, a customer's only order deleted,
    an order 2,000 days back: exact before the refresh (the changed days make the read test
    every customer) and after it (from the refreshed spans)."""
    settings = scratch_dashboard.settings
    org = scratch_dashboard.organization_ids[0]
    src = sql.Identifier(settings.source_schema)
    # the customer with the fewest orders loses them all; another gets one 2,000 days back;
    # a third's first order moves a year earlier and its last one 100 days earlier
    by_orders = conn.execute(
        sql.SQL(
            "select customer_id from {a}.orders where organization_id = %s and deleted_at is null"
            " group by 1 order by count(*), customer_id limit 3"
        ).format(a=src),
        (org,),
    ).fetchall()
    gone, early, moved = (row[0] for row in by_orders)
    conn.execute(
        sql.SQL("update {a}.orders set deleted_at = now() where customer_id = %s").format(a=src),
        (gone,),
    )
    conn.execute(
        sql.SQL(
            "insert into {a}.orders select gen_random_uuid(), organization_id, customer_id,"
            " 'delivered', 100, now() - interval '2000 days', now(), null from {a}.orders"
            " where customer_id = %s limit 1"
        ).format(a=src),
        (early,),
    )
    for order, shift in (("asc", "365 days"), ("desc", "100 days")):
        conn.execute(
            sql.SQL(
                "update {a}.orders set created_at = created_at - %s::interval where id ="
                " (select id from {a}.orders where customer_id = %s and deleted_at is null"
                f" and created_at < now() - interval '2 days' order by created_at {order} limit 1)"
            ).format(a=src),
            (shift, moved),
        )
    client = Client(settings=settings, cache=False)
    today = business_today(settings)
    ranges = [
        (today - 2100 * DAY, today),
        (today - 729 * DAY, today),
        (today - 400 * DAY, today - 30 * DAY),
        (today - 29 * DAY, today),
    ]
    plan = plan_of(conn, scratch_dashboard, org, today - 2100 * DAY, today)
    assert scans_every_customer(plan), plan
    for date_from, date_to in ranges:
        assert_matches_naive(conn, settings, client.get_metrics(org, date_from, date_to))
    refresh(scratch_dashboard, CUSTOMER_DAYS.materialized_view)
    assert spans_differences(conn, scratch_dashboard) == {}
    plan = plan_of(conn, scratch_dashboard, org, today - 2100 * DAY, today)
    assert executed(plan, CUSTOMER_DAYS.ends) and not scans_every_customer(plan), plan
    for date_from, date_to in ranges:
        assert_matches_naive(conn, settings, client.get_metrics(org, date_from, date_to))


def test_without_spans_every_customer_is_tested_and_the_next_run_rebuilds_them(
    conn: Conn, scratch_dashboard: Dashboard
) -> None:
    settings = scratch_dashboard.settings
    org = scratch_dashboard.organization_ids[1]
    today = business_today(settings)
    conn.execute(
        sql.SQL("drop table {}.{}").format(
            sql.Identifier(settings.schema), sql.Identifier(CUSTOMER_DAYS.gaps)
        )
    )
    client = Client(settings=settings, cache=False)
    for date_from, date_to in ((today - 729 * DAY, today), (today - 90 * DAY, today - 10 * DAY)):
        result = client.get_metrics(org, date_from, date_to)
        assert result.freshness["orders"].live_reason is None
        assert_matches_naive(conn, settings, result)
    assert "REBUILD" in refresh(scratch_dashboard, CUSTOMER_DAYS.materialized_view).output
    assert spans_differences(conn, scratch_dashboard) == {}
    # a damaged count fails dbt test
    conn.execute(
        sql.SQL(
            "update {s}.{e} set {f} = {f} + 1 where ctid = (select ctid from {s}.{e} limit 1)"
        ).format(
            s=sql.Identifier(settings.schema),
            e=sql.Identifier(CUSTOMER_DAYS.ends),
            f=sql.Identifier(SPANS_FIRST),
        )
    )
    tested = run_dbt(["test", "--select", CUSTOMER_DAYS.materialized_view], settings, check=False)
    assert tested.returncode != 0
    assert "matches_spans_" + CUSTOMER_DAYS.materialized_view in tested.output
