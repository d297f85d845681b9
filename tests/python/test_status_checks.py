"""``dashquery status`` on what the read path refuses or reads live (issue 11 items 2, 3,
6b, 15): settings drift, a partial deploy, an unsafe or unreachable Redis, and output that
is complete off a terminal. Real servers; a dashboard database of this module's own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner, Result
from psycopg import sql

from dashquery.catalog import DEPLOYMENT_TABLE, MATERIALIZED_VIEWS
from dashquery.cli import cli
from dashquery.config import Settings
from dashquery.ops.dbt_runner import run_dbt
from dashquery.ops.status import collect_status
from tests.python.helpers import Dashboard, refreshed, settings_environment


def status_cli(settings: Settings, *args: str, columns: int = 250) -> Result:
    env: dict[str, str | None] = {**settings_environment(settings)}
    env.update(
        PGPASSWORD=None,
        PGSERVICE=None,
        COLUMNS=str(columns),
    )
    return CliRunner().invoke(cli, ["status", *args], env=env)


@pytest.fixture(scope="module")
def ops(scratch_dashboard: Dashboard) -> Dashboard:
    return refreshed(scratch_dashboard)


@pytest.fixture
def conn(ops: Dashboard) -> Iterator[psycopg.Connection[Any]]:
    with ops.connect() as connection:
        yield connection


def table(ops: Dashboard, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(ops.settings.schema), sql.Identifier(name))


def test_a_fresh_build_has_no_deployment_problems(ops: Dashboard) -> None:
    report = collect_status(ops.settings)
    assert report.problems == () and report.healthy, report
    assert report.to_dict()["settings"]["timezone"] == ops.settings.timezone


@pytest.mark.parametrize(
    ("setting", "variable", "ours"),
    [
        ("timezone", "DASHQUERY_TIMEZONE", "UTC"),
        ("source_schema", "DASHQUERY_SOURCE_SCHEMA", "App Data"),
    ],
)
def test_settings_drift_is_unhealthy_and_names_both_values(
    ops: Dashboard, setting: str, variable: str, ours: str
) -> None:
    """Was: status healthy while every read was labelled with the client's zone (609 wrong
    keys). The views were built for the dashboard's settings; the client has other ones."""
    built = getattr(ops.settings, setting)
    drifted = dataclasses.replace(ops.settings, **{setting: ours})
    report = collect_status(drifted)
    assert not report.healthy
    [problem] = report.problems
    assert f"{variable}={built!r}" in problem and repr(ours) in problem
    assert "daily_orders" in problem and "rebuild with dbt" in problem

    result = status_cli(drifted)
    assert result.exit_code == 2, result.output
    assert problem in result.stdout
    code, data = result.exit_code, json.loads(status_cli(drifted, "--json").stdout)
    assert code == 2 and data["healthy"] is False and data["problems"] == [problem]


def test_a_partial_deploy_flags_the_views_built_from_the_old_definition(
    ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    """Was: after `dbt run --select daily_orders` with a changed definition, status stayed
    healthy while mv_daily_orders held numbers of the old one."""
    relations, marks = table(ops, "dashquery_relations"), table(ops, "dashquery_watermarks")
    [original] = conn.execute(
        sql.SQL("select definition_hash from {} where relation_name = 'daily_orders'").format(
            relations
        )
    ).fetchone()  # type: ignore[misc]
    readers = dict(
        conn.execute(
            sql.SQL(
                "select view_name, upstream_hash from {}"
                " where 'daily_orders' = any(upstream_views) order by view_name"
            ).format(marks)
        ).fetchall()
    )
    assert "mv_daily_orders" in readers
    # What `dbt run --select daily_orders` records for a changed definition, and nothing else.
    redeploy = sql.SQL(
        "update {} set definition_hash = %s, built_at = clock_timestamp()"
        " where relation_name = 'daily_orders'"
    ).format(relations)
    try:
        conn.execute(redeploy, (original + "-changed",))
        views = {v.view: v for v in collect_status(ops.settings).views}
        outdated = {name for name, view in views.items() if view.state == "outdated"}
        assert outdated == set(readers)
        assert views["mv_daily_orders"].problems == (
            "outdated: built from an older definition of daily_orders;"
            " rebuild with dbt run --select mv_daily_orders",
        )
        result = status_cli(ops.settings)
        assert result.exit_code == 2
        assert "rebuild with dbt run --select mv_daily_orders" in result.stdout

        # The advice works: that view is current again, the others still are not.
        run_dbt(["run", "--select", "mv_daily_orders"], ops.settings)
        views = {v.view: v for v in collect_status(ops.settings).views}
        assert views["mv_daily_orders"].state == "ok", views["mv_daily_orders"]
        assert {n for n, v in views.items() if v.state == "outdated"} == set(readers) - {
            "mv_daily_orders"
        }
    finally:
        conn.execute(redeploy, (original,))
        restore = sql.SQL("update {} set upstream_hash = %s where view_name = %s").format(marks)
        for view, upstream_hash in readers.items():
            conn.execute(restore, (upstream_hash, view))
    assert collect_status(ops.settings).healthy


def test_an_unreachable_redis_is_unhealthy(ops: Dashboard) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = dataclasses.replace(ops.settings, redis_url=f"redis://127.0.0.1:{port}/0")
    report = collect_status(dead)
    [problem] = report.problems
    assert problem.startswith("redis: ") and "refused" in problem.lower()
    assert status_cli(dead).exit_code == 2


@pytest.mark.parametrize(
    ("policy", "safe"),
    [
        ("noeviction", False),  # a full Redis refuses the INCR of an invalidation
        ("allkeys-lru", False),  # may evict a generation counter
        ("volatile-lru", True),
        ("volatile-ttl", True),
    ],
)
def test_the_redis_maxmemory_policy_is_checked(
    ops: Dashboard, redis_client: redis.Redis, policy: str, safe: bool
) -> None:
    before = redis_client.config_get("maxmemory*")
    try:
        redis_client.config_set("maxmemory", "1gb")
        redis_client.config_set("maxmemory-policy", policy)
        report = collect_status(ops.settings)
        if safe:
            assert report.problems == (), report.problems
        else:
            [problem] = report.problems
            assert problem.startswith("redis: ") and policy in problem and "maxmemory" in problem
            assert status_cli(ops.settings).exit_code == 2
    finally:
        redis_client.config_set("maxmemory-policy", before["maxmemory-policy"])
        redis_client.config_set("maxmemory", before["maxmemory"])
    # without a limit nothing is evicted: any policy is safe
    redis_client.config_set("maxmemory-policy", "noeviction")
    try:
        assert collect_status(ops.settings).problems == ()
    finally:
        redis_client.config_set("maxmemory-policy", before["maxmemory-policy"])


def test_off_a_terminal_every_column_is_printed_whole(ops: Dashboard) -> None:
    """Was: rich fitted the table to 80 columns off a terminal and cut cells to "…"."""
    drifted = dataclasses.replace(ops.settings, timezone="UTC")
    result = status_cli(drifted, columns=40)
    assert result.exit_code == 2
    assert "…" not in result.stdout
    [problem] = collect_status(drifted).problems
    assert f"problem: {problem}" in result.stdout.splitlines()
    for view in collect_status(ops.settings).views:
        [line] = [row for row in result.stdout.splitlines() if row.startswith(view.view + " ")]
        assert view.watermark is not None
        assert f"{view.watermark.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}" in line


def test_a_view_refreshed_before_capture_started_is_reported_until_its_next_refresh(
    ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    """The read path reads such a view live (its changes before capture_since were never
    recorded): exact but slow, and status says so, naming the refresh that fixes it."""
    deployment = table(ops, DEPLOYMENT_TABLE)
    before = conn.execute(sql.SQL("select capture_since from {}").format(deployment)).fetchone()
    assert before is not None and before[0] is not None, "capture is not on in this build"
    conn.execute(sql.SQL("update {} set capture_since = now()").format(deployment))
    try:
        views = {v.view: v for v in collect_status(ops.settings).views}
        for name in MATERIALIZED_VIEWS:
            assert views[name].state == "outdated", (name, views[name].problems)
            assert any(
                "before change capture started" in p and f"--select {name}" in p
                for p in views[name].problems
            ), views[name].problems
        run_dbt(["run", "--select", MATERIALIZED_VIEWS[0]], ops.settings)
        views = {v.view: v for v in collect_status(ops.settings).views}
        assert views[MATERIALIZED_VIEWS[0]].problems == ()
        assert views[MATERIALIZED_VIEWS[1]].state == "outdated"
    finally:
        conn.execute(sql.SQL("update {} set capture_since = %s").format(deployment), (before[0],))
