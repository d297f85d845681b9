"""Operating the views (issue 7): status, warm, notify and the refresh queue, on real servers.

Every test here shares one module-scoped ``scratch_dashboard`` and leaves it as it found it
(healthy views, empty queue), so the tests do not depend on their order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner, Result
from prometheus_client import REGISTRY
from psycopg import sql

import dashquery
from dashquery.catalog import MATERIALIZED_VIEWS, METRIC_KEYS
from dashquery.cli import cli
from dashquery.config import Settings
from dashquery.dev.naive import naive_metrics
from dashquery.errors import InvalidQuery
from dashquery.ops import events
from dashquery.ops.status import collect_status
from dashquery.ops.warm import common_ranges
from tests.python.helpers import (
    Dashboard,
    assert_matches_naive,
    business_today,
    refreshed,
    settings_environment,
)


def cli_env(settings: Settings) -> dict[str, str | None]:
    """The environment the CLI reads (Settings.from_env and libpq) for these settings."""
    env: dict[str, str | None] = {**settings_environment(settings)}
    env.update(
        PGPASSWORD=None,
        PGSERVICE=None,
        COLUMNS="250",  # rich wraps tables to the terminal width; keep rows on one line
    )
    return env


@pytest.fixture(scope="module")
def ops(scratch_dashboard: Dashboard) -> Dashboard:
    return refreshed(scratch_dashboard)


@pytest.fixture
def run_cli(ops: Dashboard, redis_client: redis.Redis) -> Iterator[Any]:
    def invoke(*args: str, settings: Settings | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=cli_env(settings or ops.settings))

    yield invoke


@pytest.fixture
def conn(ops: Dashboard) -> Iterator[psycopg.Connection[Any]]:
    with ops.connect() as connection:
        connection.execute(sql.SQL("delete from {}").format(table(ops, "dashquery_refresh_queue")))
        yield connection


@pytest.fixture
def client(ops: Dashboard, redis_client: redis.Redis) -> Iterator[dashquery.Client]:
    with dashquery.Client(settings=ops.settings) as client:
        yield client


def table(ops: Dashboard, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(ops.settings.schema), sql.Identifier(name))


def queue(conn: psycopg.Connection[Any], ops: Dashboard) -> dict[str, tuple[dt.datetime, str]]:
    rows = conn.execute(
        sql.SQL("select view_name, requested_at, reason from {}").format(
            table(ops, "dashquery_refresh_queue")
        )
    ).fetchall()
    return {view: (requested_at, reason) for view, requested_at, reason in rows}


def watermarks(conn: psycopg.Connection[Any], ops: Dashboard) -> dict[str, dt.datetime]:
    query = sql.SQL("select view_name, watermark from {}").format(
        table(ops, "dashquery_watermarks")
    )
    return dict(conn.execute(query).fetchall())


def status_json(run_cli: Any) -> tuple[int, dict[str, Any]]:
    result = run_cli("status", "--json")
    return result.exit_code, json.loads(result.stdout)


def by_view(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {view["view"]: view for view in report["views"]}


# -- status ----------------------------------------------------------------------------


def test_status_is_green_after_a_build(
    run_cli: Any, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    for view in MATERIALIZED_VIEWS:
        assert view in result.stdout
    assert "healthy" in result.stdout

    code, report = status_json(run_cli)
    assert code == 0
    assert report["healthy"] is True
    views = by_view(report)
    assert set(views) == set(MATERIALIZED_VIEWS)
    for name, view in views.items():
        assert view["state"] == "ok", view
        # the recorded row count is the view's, as nothing was written since the build
        count = conn.execute(sql.SQL("select count(*) from {}").format(table(ops, name)))
        assert view["row_count"] == count.fetchone()[0]  # type: ignore[index]
        gauge = REGISTRY.get_sample_value("dashquery_view_watermark_age_seconds", {"view": name})
        assert gauge is not None and gauge >= 0


def test_status_json_shape(run_cli: Any) -> None:
    code, report = status_json(run_cli)
    assert code == 0
    assert set(report) == {
        "checked_at", "schema", "healthy", "overdue_factor", "settings", "problems", "views",
        "listener", "warnings",
    }  # fmt: skip
    assert report["problems"] == []
    assert dt.datetime.fromisoformat(report["checked_at"]).utcoffset() == dt.timedelta(0)
    assert report["overdue_factor"] == 2
    cadences = {"mv_current_state": 5, "mv_daily_warranty": 60}
    for view in report["views"]:
        assert {
            "view", "state", "problems", "expected", "exists", "watermark", "age_seconds",
            "cadence_minutes", "overdue_after_seconds", "row_count", "last_refresh_seconds",
            "last_error", "last_run", "is_running", "queued_at",
        } <= set(view)  # fmt: skip
        assert dt.datetime.fromisoformat(view["watermark"]).utcoffset() == dt.timedelta(0)
        assert view["cadence_minutes"] == cadences.get(view["view"], 15)
        assert view["overdue_after_seconds"] == 2 * 60 * view["cadence_minutes"]
        assert view["last_run"]["status"] == "success"
        assert view["last_refresh_seconds"] >= 0


def test_status_turns_red_when_a_view_is_overdue(
    run_cli: Any, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    marks = table(ops, "dashquery_watermarks")
    [original] = conn.execute(
        sql.SQL("select watermark from {} where view_name = 'mv_daily_warranty'").format(marks)
    ).fetchone()  # type: ignore[misc]
    move = sql.SQL("update {} set watermark = %s where view_name = 'mv_daily_warranty'")
    # Capture started before the moved watermark, as it would have on a deployment that old
    # (a watermark before capture_since is a different state: 'outdated', read live).
    deployment = table(ops, "dashquery_deployment")
    [since] = conn.execute(sql.SQL("select capture_since from {}").format(deployment)).fetchone()  # type: ignore[misc]
    conn.execute(
        sql.SQL("update {} set capture_since = %s").format(deployment),
        (since - dt.timedelta(hours=3),),
    )
    # hourly: overdue after 2 h; 1 h 50 min is still fine, 2 h 10 min is not
    try:
        conn.execute(move.format(marks), (original - dt.timedelta(minutes=110),))
        assert status_json(run_cli)[0] == 0
        conn.execute(move.format(marks), (original - dt.timedelta(minutes=130),))
        result = run_cli("status")
        assert result.exit_code == 2
        assert "overdue" in result.stdout
        code, report = status_json(run_cli)
        assert code == 2 and report["healthy"] is False
        views = by_view(report)
        assert views["mv_daily_warranty"]["state"] == "overdue"
        assert views["mv_daily_warranty"]["age_seconds"] > 7200
        assert all(v["state"] == "ok" for name, v in views.items() if name != "mv_daily_warranty")
    finally:
        conn.execute(move.format(marks), (original,))
        conn.execute(sql.SQL("update {} set capture_since = %s").format(deployment), (since,))
    assert status_json(run_cli)[0] == 0


def test_a_running_row_is_failed_unless_its_lock_is_held(
    ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    runs = table(ops, "dashquery_refresh_runs")
    # What a refresh killed mid-way leaves: its committed 'running' row, and no lock.
    [run_id] = conn.execute(
        sql.SQL(
            "insert into {} (invocation_id, view_name, status)"
            " values ('test-killed', 'mv_daily_jobs', 'running') returning run_id"
        ).format(runs)
    ).fetchone()  # type: ignore[misc]
    try:
        # grace 0: the row is as old as the default grace would require, without the wait
        report = collect_status(ops.settings, lock_grace_seconds=0)
        jobs = {v.view: v for v in report.views}["mv_daily_jobs"]
        assert not report.healthy
        assert jobs.state == "failed" and "interrupted" in jobs.problems[0]
        # The same row while someone holds the view's lock, as a live refresh does: running.
        with ops.connect() as holder:
            key = f"dashquery:{ops.settings.schema}.mv_daily_jobs"
            holder.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            report = collect_status(ops.settings, lock_grace_seconds=0)
            jobs = {v.view: v for v in report.views}["mv_daily_jobs"]
            assert report.healthy, report
            assert jobs.state == "running" and jobs.is_running
        # Within the grace a fresh 'running' row is a run starting up, not a dead one.
        assert collect_status(ops.settings).healthy
    finally:
        conn.execute(sql.SQL("delete from {} where run_id = %s").format(runs), (run_id,))


def test_status_reports_missing_views(run_cli: Any, ops: Dashboard) -> None:
    elsewhere = Settings(
        conninfo=ops.settings.conninfo,
        source_schema=ops.settings.source_schema,
        schema="dq_never_built",
        redis_url=ops.settings.redis_url,
    )
    report = collect_status(elsewhere)
    assert not report.healthy
    assert {v.view for v in report.views} == set(MATERIALIZED_VIEWS)
    assert {v.state for v in report.views} == {"missing"}
    result = run_cli("status", settings=elsewhere)
    assert result.exit_code == 2
    assert "missing" in result.stdout


# -- notify ----------------------------------------------------------------------------


def test_notify_with_a_past_date_queues_views_and_invalidates_the_org(
    client: dashquery.Client, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    today = business_today(ops.settings)
    org, other = ops.organization_ids[:2]
    for who in (org, other):
        client.get_metrics(who, today - dt.timedelta(days=6), today)
        assert client.get_metrics(who, today - dt.timedelta(days=6), today).source == "cache"

    queued = events.notify(client, org, "order.changed", today - dt.timedelta(days=3))
    expected = {"mv_daily_orders", "mv_order_customer_days", "mv_daily_energy", "mv_current_state"}
    assert set(queued) == expected
    entries = queue(conn, ops)
    assert set(entries) == expected
    assert all(reason == f"order.changed:{org}" for _, reason in entries.values())
    assert client.get_metrics(org, today - dt.timedelta(days=6), today).source == "computed"
    assert client.get_metrics(other, today - dt.timedelta(days=6), today).source == "cache"

    # A second event merges its token and keeps the earliest request time.
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    events.notify(client, str(other), "order.delivered", yesterday)
    merged = queue(conn, ops)
    assert merged["mv_daily_orders"][0] == entries["mv_daily_orders"][0]
    assert set(merged["mv_daily_orders"][1].split()) == {
        f"order.changed:{org}",
        f"order.delivered:{other}",
    }
    events.notify(client, org, "job.status_changed", dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    assert set(queue(conn, ops)) == expected | {"mv_daily_jobs", "mv_daily_labor"}


def test_notify_today_queues_nothing_but_invalidates(
    client: dashquery.Client, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    today = business_today(ops.settings)
    org = ops.organization_ids[0]
    for occurred_on in (None, today, today.isoformat()):
        client.get_metrics(org, today, today)
        assert client.get_metrics(org, today, today).source == "cache"
        assert events.notify(client, org, "warranty_claim.changed", occurred_on) == ()
        assert client.get_metrics(org, today, today).source == "computed"
    assert queue(conn, ops) == {}


def test_notify_rejects_bad_arguments_before_doing_anything(
    client: dashquery.Client, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    today = business_today(ops.settings)
    org = ops.organization_ids[0]
    client.get_metrics(org, today, today)
    past = today - dt.timedelta(days=5)
    with pytest.raises(InvalidQuery, match=r"event='order\.shipped'"):
        events.notify(client, org, "order.shipped", past)
    with pytest.raises(InvalidQuery, match="occurred_on"):
        events.notify(client, org, "order.changed", "last tuesday")
    with pytest.raises(InvalidQuery, match="occurred_on"):
        events.notify(client, org, "order.changed", dt.datetime(2025, 1, 1, 12))  # naive
    with pytest.raises(InvalidQuery, match="organization_id"):
        events.notify(client, "not-a-uuid", "order.changed", past)
    assert queue(conn, ops) == {}
    assert client.get_metrics(org, today, today).source == "cache"


# -- refresh ---------------------------------------------------------------------------


def test_refresh_queued_drains_the_queue_and_serves_the_new_history(
    run_cli: Any, client: dashquery.Client, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    settings = ops.settings
    today = business_today(settings)
    src = sql.Identifier(settings.source_schema)
    # Rewrite history: a pipeline value on a day the materialized view already holds.
    row = conn.execute(
        sql.SQL(
            "select id, organization_id, (created_at at time zone %s)::date from {}.opportunities"
            " where deleted_at is null and (created_at at time zone %s)::date < %s - 3"
            " order by created_at desc limit 1"
        ).format(src),
        (settings.timezone, settings.timezone, today),
    ).fetchone()
    assert row is not None
    opportunity_id, org, day = row
    # The queue is what keeps a deployment without change capture fresh: rewrite history as
    # such a deployment would see it, with the capture triggers not firing (with capture the
    # read is exact at once: tests/python/test_read_changes.py).
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            sql.SQL(
                "update {}.opportunities set value_cents = value_cents + 123457 where id = %s"
            ).format(src),
            (opportunity_id,),
        )
    assert events.notify(client, org, "opportunity.stage_changed", day) == (
        "mv_daily_pipeline",
        "mv_current_state",
    )
    stale = client.get_metrics(org, day, day)  # old history, cached again after the notify
    assert client.get_metrics(org, day, day).source == "cache"
    naive = naive_metrics(conn, settings, org, day, day)
    assert stale.metrics["pipeline_value_cents"] == naive["pipeline_value_cents"] - 123457
    before = watermarks(conn, ops)

    result = run_cli("refresh", "--queued")
    assert result.exit_code == 0, result.output
    assert "refreshed: mv_current_state, mv_daily_pipeline" in result.stdout
    assert queue(conn, ops) == {}
    after = watermarks(conn, ops)
    assert after["mv_daily_pipeline"] > before["mv_daily_pipeline"]
    assert after["mv_current_state"] > before["mv_current_state"]
    assert after["mv_daily_orders"] == before["mv_daily_orders"]
    fresh = client.get_metrics(org, day, day)
    assert fresh.source == "computed"  # the drain invalidated the organization
    assert fresh.freshness["pipeline"].first_live_day is None  # the day came from the view
    assert_matches_naive(conn, settings, fresh)

    assert run_cli("refresh", "--queued").stdout.strip() == "queue empty"


@pytest.mark.slow  # three dbt runs
def test_a_failed_queued_refresh_is_put_back_and_reported(
    run_cli: Any,
    client: dashquery.Client,
    ops: Dashboard,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = business_today(ops.settings)
    # A real refresh failure: a SHARE lock held on the block (the refresh writes it under ROW
    # EXCLUSIVE, which conflicts) while dbt runs with a short lock_timeout.
    with ops.connect() as holder:
        holder.execute("begin")
        holder.execute(
            sql.SQL("lock table {} in share mode").format(table(ops, "mv_daily_warranty"))
        )
        monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=2000")
        try:
            org = ops.organization_ids[0]
            events.notify(client, org, "warranty_claim.changed", today - dt.timedelta(days=20))
            result = run_cli("refresh", "--queued")
            assert result.exit_code == 1
            assert "dbt failed" in result.output
            assert "put back in the queue: mv_daily_warranty" in result.stdout
            assert set(queue(conn, ops)) == {"mv_daily_warranty"}  # current_state succeeded

            result = run_cli("status")
            assert result.exit_code == 2
            assert "failed" in result.stdout
            code, report = status_json(run_cli)
            warranty = by_view(report)["mv_daily_warranty"]
            assert code == 2 and warranty["state"] == "failed"
            assert warranty["last_run"]["status"] == "failed"
            assert "lock" in warranty["last_error"].lower()
        finally:
            monkeypatch.delenv("PGOPTIONS")
            holder.execute("rollback")
    result = run_cli("refresh", "--queued")
    assert result.exit_code == 0, result.output
    assert queue(conn, ops) == {}
    code, report = status_json(run_cli)
    assert by_view(report)["mv_daily_warranty"]["state"] == "ok"
    assert code == 0, report


def test_refresh_select_passes_through_to_dbt(
    run_cli: Any, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    before = watermarks(conn, ops)
    result = run_cli("refresh", "--select", "tag:5min")
    assert result.exit_code == 0, result.output
    after = watermarks(conn, ops)
    assert after["mv_current_state"] > before["mv_current_state"]
    assert after["mv_daily_warranty"] == before["mv_daily_warranty"]
    assert run_cli("refresh").exit_code == 2  # neither --queued nor --select
    assert run_cli("refresh", "--queued", "--select", "tag:5min").exit_code == 2


# -- warm ------------------------------------------------------------------------------


def test_warm_fills_the_cache_for_active_organizations(
    run_cli: Any, ops: Dashboard, conn: psycopg.Connection[Any]
) -> None:
    active = {
        org
        for (org,) in conn.execute(
            sql.SQL(
                "select organization_id from {}.activities"
                " where created_at >= now() - interval '7 days'"
            ).format(sql.Identifier(ops.settings.source_schema))
        )
    }
    assert active and ops.empty_organization_id not in active
    ranges = common_ranges(business_today(ops.settings))
    # On some days presets coincide (a Monday's "this week" is "today"): one key each.
    distinct_ranges = len(set(ranges.values()))
    result = run_cli("warm", "--concurrency", "3")
    assert result.exit_code == 0, result.output
    assert f"{len(active) * distinct_ranges} computed, 0 already cached, 0 failed" in (
        result.stdout
    )

    assert ranges["this_week"][0].weekday() == 0
    with dashquery.Client(settings=ops.settings) as client:
        for org in active:
            for start, end in ranges.values():
                assert client.get_metrics(org, start, end).source == "cache", (org, start, end)
        start, end = ranges["last_30_days"]
        assert (end - start).days == 29
        # the warmed value is what the read path computes (JSON numbers, as every cached value)
        org = next(iter(active))
        cached = client.get_metrics(org, start, end).to_dict()
        computed = client.compute(org, start, end).to_dict()
        assert {k: cached[k] for k in METRIC_KEYS} == {k: computed[k] for k in METRIC_KEYS}
        assert client.get_metrics(ops.empty_organization_id, start, end).source == "computed"

    again = run_cli("warm", "--force")
    assert again.exit_code == 0, again.output
    keys = len(active) * distinct_ranges
    assert f"{keys} computed, 0 already cached" in again.stdout
    assert run_cli("warm").stdout.count(f"0 computed, {keys} already cached") == 1


@pytest.mark.parametrize(
    "occurred_on",
    [
        "2024-01-01\u00a0",
        "\u20282024-01-01T10:00+00:00",
        "2024-01-01T10:00+00:00\x85",
        "\x1c2024-01-01",
        "2025-W01-1T10:00+00:00",  # fromisoformat reads an ISO week date
        "2024-01-01T1\u0660:00+00:00",  # and non-ASCII digits
    ],
)
def test_notify_refuses_unicode_blanks_and_other_iso_forms(
    client: dashquery.Client, ops: Dashboard, conn: psycopg.Connection[Any], occurred_on: str
) -> None:
    org = ops.organization_ids[0]
    with pytest.raises(InvalidQuery, match="occurred_on"):
        events.notify(client, org, "order.changed", occurred_on)
    with pytest.raises(InvalidQuery, match="organization_id"):
        events.notify(client, f"\u00a0{org}", "order.changed", None)
    assert queue(conn, ops) == {}


def test_notify_never_echoes_a_huge_argument_whole(
    client: dashquery.Client, ops: Dashboard
) -> None:
    org = ops.organization_ids[0]
    huge = "9" * 100_000
    for arguments, named in (
        ((huge, "order.changed", None), "organization_id"),
        ((org, huge, None), "event"),
        ((org, "order.changed", huge), "occurred_on"),
    ):
        with pytest.raises(InvalidQuery, match=named) as caught:
            events.notify(client, *arguments)
        assert len(str(caught.value)) < 300, named
    # an unhashable event was a raw TypeError
    with pytest.raises(InvalidQuery, match="event"):
        events.notify(client, org, ["order.changed"], None)  # type: ignore[arg-type]
