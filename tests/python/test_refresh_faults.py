"""Issue 8 §3: a refresh never blocks readers, and a refresh killed half-way commits all or
nothing: the previous data and watermark stay until a refresh succeeds, and the run log says
the run failed (the on-run-end hook, or the next run of the view when dbt died too).

Both tests refresh the module's own ``scratch_dashboard`` with real dbt runs.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.ops.dbt_runner import (
    PROJECT_DIR,
    dbt_environment,
    dbt_executable,
    ensure_profiles_dir,
    run_dbt,
)
from tests.python.faults_support import poll, recent_ranges, relation
from tests.python.helpers import Dashboard, assert_matches_naive

Conn = psycopg.Connection[Any]


# -- §3 refresh under load ------------------------------------------------------------------


def test_fifty_readers_are_never_blocked_by_a_refresh(scratch_dashboard: Dashboard) -> None:
    """50 threads loop on Client.compute while dbt refreshes every 15-minute view. Proof, by
    counting: no reader backend is ever seen waiting on a lock (sampled every 10 ms), reads
    overlap each view's refresh (its window from the run log), all are exact, and none took
    half as long as the dbt run."""
    settings = dataclasses.replace(
        scratch_dashboard.settings,
        conninfo=scratch_dashboard.settings.conninfo + " application_name=dq_refresh_reader",
    )
    requests = [
        (org, *r)
        for org in scratch_dashboard.organization_ids
        for r in recent_ranges(scratch_dashboard)
    ]
    with Client(settings=settings, cache=False) as plain, scratch_dashboard.connect() as conn:
        expected = {}
        for request in requests:
            result = plain.compute(*request)
            assert_matches_naive(conn, settings, result)
            expected[request] = result.metrics

    stop = threading.Event()
    reads: list[tuple[float, float]] = []  # wall clock, comparable with the run log's
    wrong: list[Any] = []
    errors: list[BaseException] = []
    blocked: list[int] = []

    def read(client: Client, i: int) -> None:
        while not stop.is_set():
            request = requests[i % len(requests)]
            started = time.time()
            try:
                result = client.compute(*request)
            except BaseException as exc:  # any exception fails the test
                errors.append(exc)
                return
            reads.append((started, time.time()))
            if result.metrics != expected[request]:
                wrong.append(request)
            i += 1

    def watch_locks() -> None:
        with scratch_dashboard.connect() as watcher:
            while not stop.is_set():
                row = watcher.execute(
                    "select count(*) from pg_stat_activity where application_name ="
                    " 'dq_refresh_reader' and wait_event_type = 'Lock'"
                ).fetchone()
                blocked.append(row[0] if row else 0)
                time.sleep(0.01)

    with (
        Client(settings=settings, cache=False, pool_size=20) as client,
        ThreadPoolExecutor(51) as threads,
    ):
        threads.submit(watch_locks)
        for i in range(50):
            threads.submit(read, client, i)
        try:
            time.sleep(1.0)
            refresh_started = time.time()
            run_dbt(["run", "--select", "tag:15min"], settings)
            refresh_seconds = time.time() - refresh_started
            time.sleep(0.5)
        finally:
            stop.set()
    with scratch_dashboard.connect() as conn:
        runs = conn.execute(
            sql.SQL(
                "select view_name, status, action, extract(epoch from started_at),"
                " extract(epoch from finished_at) from {} where started_at >= to_timestamp(%s)"
            ).format(relation(scratch_dashboard, "dashquery_refresh_runs")),
            (refresh_started,),
        ).fetchall()
    assert not errors and not wrong
    assert len(runs) >= 4 and {(r[1], r[2]) for r in runs} == {("success", "refresh")}, runs
    for view, _status, _action, started, finished in runs:
        overlapping = [e for s, e in reads if s < float(finished) and e > float(started)]
        assert overlapping, f"no read overlapped the refresh of {view}"
    during = [
        e - s for s, e in reads if s < refresh_started + refresh_seconds and e > refresh_started
    ]
    assert max(during) < refresh_seconds / 2, "a reader waited about as long as the refresh"
    assert len(blocked) > 10 and sum(blocked) == 0, "a reader waited on a lock"


# -- §3 a refresh killed half-way -------------------------------------------------------------


def start_dbt(args: list[str], settings: Any, folder: Path) -> subprocess.Popen[bytes]:
    """``dbt <args>`` as run_dbt builds it, but started in the background so we can kill it."""
    env = dbt_environment(settings)
    env.setdefault("DBT_PROFILES_DIR", str(ensure_profiles_dir(folder / "profiles")))
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(folder / "target"),
        "--log-path",
        str(folder / "logs"),
    ]
    with (folder / "dbt.out").open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=PROJECT_DIR, stdout=out, stderr=out)


def view_state(conn: Conn, dashboard: Dashboard, view: str) -> tuple[Any, ...]:
    """(row count, digest of every row, watermark, last_failed_at) of a materialized view."""
    query = sql.SQL(
        "select count(*), md5(string_agg(v::text, '|' order by v::text)),"
        " (select watermark from {marks} where view_name = %(view)s),"
        " (select last_failed_at from {marks} where view_name = %(view)s) from {view} v"
    ).format(marks=relation(dashboard, "dashquery_watermarks"), view=relation(dashboard, view))
    row = conn.execute(query, {"view": view}).fetchone()
    assert row is not None
    return tuple(row)


def duplicate_an_old_order(conn: Conn, dashboard: Dashboard, org: Any) -> None:
    """Same customer and day as an order 10+ days old: only mv_daily_orders changes."""
    orders = sql.SQL("{}.orders").format(sql.Identifier(dashboard.settings.source_schema))
    conn.execute(
        sql.SQL(
            "insert into {orders} select gen_random_uuid(), organization_id, customer_id,"
            " 'delivered', 4321, created_at, now(), null from {orders}"
            " where organization_id = %s and deleted_at is null"
            " and created_at < now() - interval '10 days' order by created_at desc limit 1"
        ).format(orders=orders),
        (org,),
    )


def run_row(conn: Conn, dashboard: Dashboard, run_id: int) -> tuple[Any, Any]:
    runs = relation(dashboard, "dashquery_refresh_runs")
    query = sql.SQL("select status, error from {} where run_id = %s").format(runs)
    row = conn.execute(query, (run_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def stalled_refresh(conn: Conn, dashboard: Dashboard, view: str) -> tuple[int, int]:
    """The backend running the view's refresh statement once it waits on a lock, and its run."""
    pid = poll(
        lambda: conn.execute(
            "select pid from pg_stat_activity where pid <> pg_backend_pid()"
            " and wait_event_type = 'Lock' and query like %s",
            # The refresh statement begins with SET TRANSACTION (either strategy).
            (f"%set transaction isolation level repeatable read%{view}%",),
        ).fetchone(),
        seconds=120,
        what="the refresh to reach its watermark",
    )[0]
    runs = relation(dashboard, "dashquery_refresh_runs")
    row = conn.execute(
        sql.SQL("select max(run_id) from {} where view_name = %s and status = 'running'").format(
            runs
        ),
        (view,),
    ).fetchone()
    assert row is not None and row[0] is not None
    return int(pid), int(row[0])


KILLS = {
    "backend terminated": "dbt sees the error and its on-run-end hook logs the failure",
    "crash": "dbt and its session both die: the next run of the view logs it",
    "dbt killed": "the statement dbt had sent finishes without it, all of it",
}


@pytest.mark.parametrize("kill", list(KILLS))
def test_a_killed_refresh_commits_all_or_nothing(
    scratch_dashboard: Dashboard, tmp_path: Path, kill: str
) -> None:
    """The refresh statement (REFRESH, watermark, run log: one transaction) is held at its
    watermark row, locked by the test, with the new data already written; then it is killed.
    A duplicated order dated 10+ days back makes the new data differ from the old."""
    settings, view = scratch_dashboard.settings, "mv_daily_orders"
    org = scratch_dashboard.organization_ids[0]
    request = (org, *recent_ranges(scratch_dashboard)[0])
    marks = relation(scratch_dashboard, "dashquery_watermarks")
    with (
        Client(settings=settings, cache=False) as client,
        scratch_dashboard.connect() as conn,
        scratch_dashboard.connect() as blocker,
    ):
        old = client.get_metrics(*request)
        duplicate_an_old_order(conn, scratch_dashboard, org)
        before = view_state(conn, scratch_dashboard, view)
        blocker.execute("begin")
        lock = sql.SQL("select from {} where view_name = %s for update").format(marks)
        blocker.execute(lock, (view,))
        dbt = start_dbt(["run", "--select", view], settings, tmp_path)
        try:
            pid, run_id = stalled_refresh(conn, scratch_dashboard, view)
            # Readers are not blocked and are exact: the last committed refresh, with the
            # duplicated order's day read live (its change row is not consumed yet).
            assert_matches_naive(conn, settings, client.get_metrics(*request))
            if kill != "backend terminated":
                dbt.kill()
                dbt.wait()
            if kill != "dbt killed":
                conn.execute("select pg_terminate_backend(%s)", (pid,))
        finally:
            blocker.execute("rollback")
            returncode = dbt.wait(timeout=300)
        ended = "select 1 from pg_stat_activity where pid = %s"
        poll(lambda: not conn.execute(ended, (pid,)).fetchone(), seconds=60, what="its end")
        after = view_state(conn, scratch_dashboard, view)
        status, error = run_row(conn, scratch_dashboard, run_id)
        result = client.get_metrics(*request)
        if kill == "dbt killed":
            assert after[:2] != before[:2] and after[2] > before[2] and after[3] is None
            assert status == "success"
            assert result.freshness["orders"].live_reason is None
            assert_matches_naive(conn, settings, result)
            return
        assert after[:3] == before[:3], "the killed refresh left new data or a new watermark"
        if kill == "backend terminated":
            # The view is marked failed, so its block is read live, and so is exact.
            assert returncode != 0 and status == "failed" and error and after[3] is not None
            assert "failed" in (result.freshness["orders"].live_reason or "")
            assert_matches_naive(conn, settings, result)
        else:
            # The old data is served, and with capture on the changed day is read live,
            # so the result is exact (contract §5), not stale by one refresh.
            assert status == "running" and after[3] is None
            assert result.metrics != old.metrics
            assert_matches_naive(conn, settings, result)
        run_dbt(["run", "--select", view], settings)
        status, error = run_row(conn, scratch_dashboard, run_id)
        assert status == "failed"
        assert kill != "crash" or error.startswith("interrupted")
        healed = client.get_metrics(*request)
        assert healed.freshness["orders"].live_reason is None
        assert_matches_naive(conn, settings, healed)
