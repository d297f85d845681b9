"""Issue 11 items 2, 3, 4 and 9 (read side): real dbt deploys under a running ``Client``.

A deploy is a real ``dbt run`` from a copy of the project whose model was edited (the way a
changed model reaches production), never a view replaced by hand: the bookkeeping rows the
read path checks are then exactly the ones dbt writes. The module's own dashboard is put
back with a dbt run from the real project after each test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client, Misconfigured
from dashquery.catalog import CAPTURE_SINCE_COLUMN, DEPLOYMENT_TABLE, WATERMARKS_TABLE
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import run_dbt
from tests.python.helpers import (
    SCRATCH_SEED,
    Dashboard,
    assert_matches_naive,
    build_dashboard,
    business_today,
    edited_project,
    watermark_day,
)

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    return build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)


@pytest.fixture
def conn(dashboard: Dashboard) -> Iterator[Conn]:
    with dashboard.connect() as connection:
        yield connection


def last_months(dashboard: Dashboard) -> tuple[dt.date, dt.date]:
    today = business_today(dashboard.settings)
    return today - dt.timedelta(days=200), today


def back_date_revenue(conn: Conn, dashboard: Dashboard) -> None:
    """A delivered order 100 days ago gains 12,345 cents, after the last refresh, with the
    capture triggers not firing (session_replication_role = replica): mv_daily_orders still
    holds the old value and nothing marks the day changed (contract §5 without change
    capture), so only a live read of the whole block sees it."""
    orders = sql.SQL("{}.orders").format(sql.Identifier(dashboard.settings.source_schema))
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        changed = conn.execute(
            sql.SQL(
                "update {orders} set total_cents = total_cents + 12345 where id = ("
                " select id from {orders} where organization_id = %s and status = 'delivered'"
                " and deleted_at is null and created_at < now() - interval '100 days'"
                " order by created_at desc limit 1) returning id"
            ).format(orders=orders),
            (dashboard.organization_ids[0],),
        ).fetchone()
    assert changed is not None


def test_partial_deploy_reads_the_block_live_until_its_mv_is_rebuilt(
    dashboard: Dashboard, conn: Conn, tmp_path: Path
) -> None:
    settings, org = dashboard.settings, dashboard.organization_ids[0]
    request = (org, *last_months(dashboard))
    # A contract-keeping change: one more column (CREATE OR REPLACE VIEW can append it).
    project = edited_project(
        tmp_path,
        "daily_orders",
        "    from orders\n",
        ",\n        count(*) as deploy_check\n    from orders\n",
    )
    with Client(settings=settings, cache=False) as client:
        assert_matches_naive(conn, settings, client.get_metrics(*request))
        identity = client.computer.identity()
        back_date_revenue(conn, dashboard)
        stale = client.get_metrics(*request)
        with pytest.raises(AssertionError, match="revenue_cents"):  # the premise: mv is stale
            assert_matches_naive(conn, settings, stale)
        try:
            run_dbt(["run", "--select", "daily_orders"], settings, project_dir=project)
            with Client(settings=settings, cache=False) as fresh:
                for reader in (client, fresh):
                    result = reader.get_metrics(*request)
                    assert_matches_naive(conn, settings, result)
                    reason = result.freshness["orders"].live_reason or ""
                    assert "mv_daily_orders was built from an older definition of" in reason
                    assert "daily_orders" in reason.split("definition of")[1]
                    assert result.freshness["orders"].first_live_day == request[1]
            # The statement reported the new fingerprint: the identity followed at once.
            assert client.computer.identity() != identity
            run_dbt(["run", "--select", "mv_daily_orders"], settings, project_dir=project)
            result = client.get_metrics(*request)
            assert_matches_naive(conn, settings, result)
            assert result.freshness["orders"].live_reason is None
        finally:  # dropping the added column again needs the drop-and-rebuild path
            run_dbt(["run", "--select", "daily_orders+", "--full-refresh"], settings)


def test_identity_names_the_cluster_database_deployment_and_definitions(
    dashboard: Dashboard, conn: Conn
) -> None:
    with Client(settings=dashboard.settings, cache=False) as client:
        system_id, database, deployment, fingerprint = client.computer.identity().split(":")
    row = conn.execute(
        sql.SQL(
            "select (select system_identifier::text from pg_control_system()),"
            " current_database(), (select deployment_id::text from {})"
        ).format(sql.Identifier(dashboard.settings.schema, "dashquery_deployment"))
    ).fetchone()
    assert row is not None
    assert (system_id, database, deployment) == tuple(row)
    assert re.fullmatch("[0-9a-f]{32}", fingerprint)


def test_settings_drift_is_misconfigured_at_once_naming_both_values(
    dashboard: Dashboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings, org = dashboard.settings, dashboard.organization_ids[0]
    zone = dataclasses.replace(settings, timezone="UTC")
    source = dataclasses.replace(settings, source_schema="elsewhere")
    cases = [
        (zone, "DASHQUERY_TIMEZONE", settings.timezone, "UTC"),
        (source, "DASHQUERY_SOURCE_SCHEMA", settings.source_schema, "elsewhere"),
    ]
    for other, variable, built, used in cases:
        with Client(settings=other, cache=False) as client:
            started = time.monotonic()
            with pytest.raises(Misconfigured) as raised:
                client.get_metrics(org, *last_months(dashboard))
            assert time.monotonic() - started < 2
            message = str(raised.value)
            assert f"{variable}={built!r}" in message and f"uses {used!r}" in message, message
            assert settings.schema in message
    assert not [r for r in caplog.records if "attempt" in r.getMessage()], "no retries"


def test_rebuild_for_another_zone_under_a_running_client_is_caught_on_the_next_read(
    dashboard: Dashboard, conn: Conn
) -> None:
    settings, org = dashboard.settings, dashboard.organization_ids[0]
    request = (org, *last_months(dashboard))
    with Client(settings=settings, cache=False) as client:
        assert_matches_naive(conn, settings, client.get_metrics(*request))
        client.get_series(org, "revenue_cents", *request[1:], "month")
        try:
            run_dbt(
                ["run", "--select", "daily_orders"], dataclasses.replace(settings, timezone="UTC")
            )
            with pytest.raises(Misconfigured, match="DASHQUERY_TIMEZONE='UTC' but this client"):
                client.get_metrics(*request)
            with pytest.raises(Misconfigured, match="DASHQUERY_TIMEZONE='UTC'"):
                client.get_series(org, "revenue_cents", *request[1:], "month")
        finally:
            run_dbt(["run", "--select", "daily_orders+"], settings)
        assert_matches_naive(conn, settings, client.get_metrics(*request))


def test_column_retype_and_rebuild_recovers_on_the_next_call(
    dashboard: Dashboard, conn: Conn, tmp_path: Path
) -> None:
    """docs/OPERATIONS.md's retype: every pooled connection has the statement prepared; the
    rebuilt view changes its result type ("cached plan must not change result type")."""
    settings, org = dashboard.settings, dashboard.organization_ids[0]
    request = (org, *last_months(dashboard))
    project = edited_project(
        tmp_path,
        "daily_warranty",
        "count(*) as warranty_claims",
        "count(*)::int as warranty_claims",
    )
    with Client(settings=settings, cache=False, pool_size=3) as client:

        def read_everywhere() -> None:
            with ThreadPoolExecutor(3) as workers:
                results = list(workers.map(lambda _: client.compute(*request), range(12)))
                series = list(workers.map(
                    lambda _: client.get_series(org, "warranty_claims", *request[1:], "week"),
                    range(6),
                ))  # fmt: skip
            for result in results:
                assert_matches_naive(conn, settings, result)
            total = sum(value for _, value in series[0].points)
            assert total == results[0].metrics["warranty_claims"]

        read_everywhere()
        try:
            run_dbt(
                ["run", "--select", "daily_warranty+", "--full-refresh"],
                settings,
                project_dir=project,
            )
            read_everywhere()
        finally:
            run_dbt(["run", "--select", "daily_warranty+", "--full-refresh"], settings)
        read_everywhere()


def test_a_read_after_midnight_reads_the_watermarks_day_live(
    dashboard: Dashboard, conn: Conn
) -> None:
    """A refresh just before midnight in the business zone and a read just after it: the
    watermark's day (yesterday by then) is read live, since its materialized row was built
    from part of it; the first live day is the watermark's day, not today. Simulated by
    moving every watermark (and the capture start, which a watermark must not precede) back
    one day, then changing an order of yesterday with the capture triggers off, so that only
    a live read of yesterday sees the change."""
    settings, org = dashboard.settings, dashboard.organization_ids[0]
    schema = sql.Identifier(settings.schema)
    marks = sql.SQL("{}.{}").format(schema, sql.Identifier(WATERMARKS_TABLE))
    deployment = sql.SQL("{}.{}").format(schema, sql.Identifier(DEPLOYMENT_TABLE))
    orders = sql.SQL("{}.orders").format(sql.Identifier(settings.source_schema))
    today = business_today(settings)
    yesterday = today - dt.timedelta(days=1)

    def shift(direction: str, cents: int, order_id: Any = None) -> Any:
        """Moves the watermarks and capture start by a day and one order of yesterday."""
        params = {"cents": cents, "org": org, "tz": settings.timezone, "day": yesterday}
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            for relation, column in ((marks, "watermark"), (deployment, CAPTURE_SINCE_COLUMN)):
                conn.execute(
                    sql.SQL("update {} set {column} = {column} {op} interval '1 day'").format(
                        relation, column=sql.Identifier(column), op=sql.SQL(direction)
                    )
                )
            row = conn.execute(
                sql.SQL(
                    "update {orders} set total_cents = total_cents + %(cents)s where id = ("
                    " select id from {orders} where organization_id = %(org)s"
                    " and deleted_at is null and status <> 'cancelled'"
                    " and (created_at at time zone %(tz)s)::date = %(day)s"
                    " and (%(id)s::uuid is null or id = %(id)s::uuid) order by id limit 1)"
                    " returning id"
                ).format(orders=orders),
                {**params, "id": order_id},
            ).fetchone()
        assert row is not None, f"no order of {yesterday} to change"
        return row[0]

    changed = shift("-", 12345)
    try:
        with Client(settings=settings, cache=False) as client:
            result = client.get_metrics(org, today - dt.timedelta(days=29), today)
        assert_matches_naive(conn, settings, result)
        for block in ("orders", "energy", "pipeline", "jobs", "warranty"):
            freshness = result.freshness[block]
            assert freshness.watermark is not None and freshness.live_reason is None
            assert freshness.first_live_day == watermark_day(freshness.watermark, settings)
            assert freshness.first_live_day <= yesterday
    finally:
        shift("+", -12345, changed)
