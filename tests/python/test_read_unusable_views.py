"""Issue 11 item 1: whichever materialized views are missing, unpopulated or failed — one at a
time or all at once — every block, ``unique_customers`` included, equals the naive query.

Before the fix ``unique_customers`` summed daily counts whenever ``mv_order_customer_days``
could not be used (its live arm alone was "unioned" with nothing, so nothing was
deduplicated). The views are broken by hand the ways dbt leaves them: renamed away (a drop;
renamed back instead of rebuilt, so the test stays fast), ``REFRESH ... WITH NO DATA`` (a
first build that failed half-way), and ``last_failed_at`` set (what dbt's on-run-end hook
writes after a failed refresh).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.catalog import MATERIALIZED_VIEWS
from dashquery.dev.stack import LocalStack
from tests.python.faults_support import relation, relation_kind
from tests.python.helpers import (
    SCRATCH_SEED,
    Dashboard,
    assert_matches_naive,
    build_dashboard,
    business_today,
)

Conn = psycopg.Connection[Any]
Breaker = Callable[[Conn, Dashboard, str], Callable[[], None]]


@pytest.fixture(scope="module")
def dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    return build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)


def missing(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    away = f"{view}_away"
    rename = sql.SQL("alter {} {} rename to {}")
    kind = relation_kind(conn, dashboard, view)
    conn.execute(rename.format(kind, relation(dashboard, view), sql.Identifier(away)))
    return lambda: conn.execute(
        rename.format(kind, relation(dashboard, away), sql.Identifier(view))
    )


def unpopulated(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    """A materialized view created WITH NO DATA where the block is (the concurrent strategy's
    relation before its first refresh); an incremental block's table is moved aside."""
    kind = relation_kind(conn, dashboard, view)
    if kind.as_string() == "materialized view":
        refresh = sql.SQL("refresh materialized view {} {}")
        conn.execute(refresh.format(relation(dashboard, view), sql.SQL("with no data")))
        return lambda: conn.execute(refresh.format(relation(dashboard, view), sql.SQL("")))
    away = f"{view}_away"
    conn.execute(
        sql.SQL("alter table {} rename to {}").format(
            relation(dashboard, view), sql.Identifier(away)
        )
    )
    conn.execute(
        sql.SQL("create materialized view {} as select * from {} with no data").format(
            relation(dashboard, view), relation(dashboard, away)
        )
    )

    def restore() -> None:
        conn.execute(sql.SQL("drop materialized view {}").format(relation(dashboard, view)))
        conn.execute(
            sql.SQL("alter table {} rename to {}").format(
                relation(dashboard, away), sql.Identifier(view)
            )
        )

    return restore


def failed(conn: Conn, dashboard: Dashboard, view: str) -> Callable[[], None]:
    update = sql.SQL("update {} set last_failed_at = {} where view_name = %s")
    table = relation(dashboard, "dashquery_watermarks")
    conn.execute(update.format(table, sql.SQL("now()")), (view,))
    return lambda: conn.execute(update.format(table, sql.NULL), (view,))


def ranges(dashboard: Dashboard) -> list[tuple[dt.date, dt.date]]:
    today = business_today(dashboard.settings)
    day = dt.timedelta(days=1)
    return [
        (today - 729 * day, today),
        (today - 30 * day, today),
        (today - 400 * day, today - 200 * day),
        (today - 3629 * day, today + 30 * day),
    ]


@pytest.fixture
def conn(dashboard: Dashboard) -> Iterator[Conn]:
    with dashboard.connect() as connection:
        yield connection


def check_every_block(dashboard: Dashboard, conn: Conn, clients: list[Client]) -> None:
    org = dashboard.organization_ids[0]
    for client in clients:
        for date_from, date_to in ranges(dashboard):
            result = client.get_metrics(org, date_from, date_to)
            assert_matches_naive(conn, dashboard.settings, result)


BREAKERS = (missing, unpopulated, failed)
CASES = [(breaker, view) for breaker in BREAKERS for view in MATERIALIZED_VIEWS]


@pytest.mark.parametrize(("breaker", "view"), CASES, ids=[f"{b.__name__}-{v}" for b, v in CASES])
def test_one_unusable_view_keeps_every_block_exact(
    dashboard: Dashboard, conn: Conn, breaker: Breaker, view: str
) -> None:
    with Client(settings=dashboard.settings, cache=False) as seasoned:
        check_every_block(dashboard, conn, [seasoned])  # found the views, prepared
        restore = breaker(conn, dashboard, view)
        try:
            with Client(settings=dashboard.settings, cache=False) as fresh:
                check_every_block(dashboard, conn, [seasoned, fresh])
        finally:
            restore()


@pytest.mark.parametrize("breaker", BREAKERS)
def test_every_view_unusable_at_once_keeps_every_block_exact(
    dashboard: Dashboard, conn: Conn, breaker: Breaker
) -> None:
    with Client(settings=dashboard.settings, cache=False) as seasoned:
        check_every_block(dashboard, conn, [seasoned])
        restores = [breaker(conn, dashboard, view) for view in MATERIALIZED_VIEWS]
        try:
            with Client(settings=dashboard.settings, cache=False) as fresh:
                check_every_block(dashboard, conn, [seasoned, fresh])
                result = fresh.get_metrics(dashboard.organization_ids[0], *ranges(dashboard)[0])
                assert all(f.live_reason for f in result.freshness.values()), result.freshness
        finally:
            for restore in restores:
                restore()
