"""The dashboard_mv materialization (incremental by default): refresh, watermarks, run log,
lock, swap."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery.catalog import MATERIALIZED_VIEWS
from dashquery.ops.dbt_runner import DbtError, run_dbt
from tests.python.helpers import Dashboard

FIFTEEN_MINUTE_VIEWS = {
    "mv_daily_orders",
    "mv_order_customer_days",
    "mv_daily_energy",
    "mv_daily_pipeline",
    "mv_daily_jobs",
    "mv_daily_labor",
}


def watermarks(dashboard: Dashboard) -> dict[str, Any]:
    with dashboard.connect() as conn:
        rows = conn.execute(
            sql.SQL("select view_name, watermark from {}.dashquery_watermarks").format(
                sql.Identifier(dashboard.settings.schema)
            )
        ).fetchall()
    return dict(rows)


def latest_runs(dashboard: Dashboard) -> dict[str, tuple[str, str | None, str | None]]:
    with dashboard.connect() as conn:
        rows = conn.execute(
            sql.SQL(
                "select distinct on (view_name) view_name, status, action, error"
                " from {}.dashquery_refresh_runs order by view_name, run_id desc"
            ).format(sql.Identifier(dashboard.settings.schema))
        ).fetchall()
    return {view: (status, action, error) for view, status, action, error in rows}


class ReaderLoop:
    """Reads a materialized view in a loop from its own connection, recording failures."""

    def __init__(self, dashboard: Dashboard, view: str) -> None:
        self.query = sql.SQL("select count(*), sum(orders_count) from {}.{}").format(
            sql.Identifier(dashboard.settings.schema), sql.Identifier(view)
        )
        self.dashboard = dashboard
        self.errors: list[str] = []
        self.reads = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.dashboard.connect() as conn:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    conn.execute(self.query).fetchone()
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.reads += 1

    def __enter__(self) -> ReaderLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_first_build_recorded_a_watermark_per_view(scratch_dashboard: Dashboard) -> None:
    assert set(watermarks(scratch_dashboard)) == set(MATERIALIZED_VIEWS)
    assert {status for status, _, _ in latest_runs(scratch_dashboard).values()} == {"success"}


def test_tag_refresh_blocks_no_reader_and_advances_only_its_watermarks(
    scratch_dashboard: Dashboard,
) -> None:
    before = watermarks(scratch_dashboard)
    with ReaderLoop(scratch_dashboard, "mv_daily_orders") as reader:
        result = run_dbt(["run", "--select", "tag:15min"], scratch_dashboard.settings)
    after = watermarks(scratch_dashboard)
    assert reader.errors == []
    assert reader.reads > 10
    # Readers never queue behind the refresh: no single read took a sizeable part of it.
    assert reader.slowest < max(1.0, result.seconds / 2)
    for view in MATERIALIZED_VIEWS:
        if view in FIFTEEN_MINUTE_VIEWS:
            assert after[view] > before[view], view
        else:
            assert after[view] == before[view], view
    runs = latest_runs(scratch_dashboard)
    assert all(runs[view][:2] == ("success", "refresh") for view in FIFTEEN_MINUTE_VIEWS)


def test_full_refresh_swaps_in_a_rebuilt_view_without_readers_seeing_it_missing(
    scratch_dashboard: Dashboard,
) -> None:
    with ReaderLoop(scratch_dashboard, "mv_daily_orders") as reader:
        run_dbt(
            ["run", "--select", "mv_daily_orders", "--full-refresh"], scratch_dashboard.settings
        )
    assert reader.errors == []
    assert latest_runs(scratch_dashboard)["mv_daily_orders"][:2] == ("success", "rebuild")
    with scratch_dashboard.connect() as conn:
        indexes = conn.execute(
            "select indexname from pg_indexes where schemaname = %s and tablename = %s",
            (scratch_dashboard.settings.schema, "mv_daily_orders"),
        ).fetchall()
    assert indexes == [("mv_daily_orders__key",)]


def test_overlapping_run_skips_while_another_holds_the_view(scratch_dashboard: Dashboard) -> None:
    before = watermarks(scratch_dashboard)["mv_daily_energy"]
    key = f"dashquery:{scratch_dashboard.settings.schema}.mv_daily_energy"
    with scratch_dashboard.connect() as holder:
        holder.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        run_dbt(["run", "--select", "mv_daily_energy"], scratch_dashboard.settings)
    assert latest_runs(scratch_dashboard)["mv_daily_energy"][0] == "skipped"
    assert watermarks(scratch_dashboard)["mv_daily_energy"] == before


def test_two_overlapping_runs_refresh_a_view_once(scratch_dashboard: Dashboard) -> None:
    """The second of two overlapping dbt runs finds the first one's lock and skips."""
    settings = scratch_dashboard.settings
    schema = sql.Identifier(settings.schema)
    key = f"dashquery:{settings.schema}.mv_daily_warranty"
    lock_held = sql.SQL(
        "select count(*) from pg_locks where locktype = 'advisory' and granted"
        " and ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)"
    )
    results: list[object] = []
    with scratch_dashboard.connect() as blocker:
        # Hold the view's watermark row: the first run refreshes, then waits to write it,
        # all the while holding the view's advisory lock.
        blocker.execute("begin")
        blocker.execute(
            sql.SQL(
                "select 1 from {}.dashquery_watermarks where view_name = 'mv_daily_warranty'"
                " for update"
            ).format(schema)
        )
        first = threading.Thread(
            target=lambda: results.append(
                run_dbt(["run", "--select", "mv_daily_warranty"], settings, check=False)
            )
        )
        first.start()
        try:
            with scratch_dashboard.connect() as probe:
                deadline = time.monotonic() + 120
                while probe.execute(lock_held, (key,)).fetchone() == (0,):
                    assert time.monotonic() < deadline, "the first run never took the lock"
                    time.sleep(0.2)
            second = run_dbt(["run", "--select", "mv_daily_warranty"], settings)
            assert "SKIPPED" in second.output
            assert latest_runs(scratch_dashboard)["mv_daily_warranty"][0] == "skipped"
        finally:
            blocker.execute("rollback")
            first.join(timeout=120)
    assert len(results) == 1 and getattr(results[0], "returncode", None) == 0
    with scratch_dashboard.connect() as conn:
        statuses = conn.execute(
            sql.SQL(
                "select status from {}.dashquery_refresh_runs where view_name = 'mv_daily_warranty'"
                " order by run_id desc limit 2"
            ).format(schema)
        ).fetchall()
    assert sorted(status for (status,) in statuses) == ["skipped", "success"]


def test_failed_refresh_keeps_data_and_watermark_and_is_logged(
    scratch_dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that fails half-way (here: it cannot get its lock within dbt's
    lock_timeout, since the capacity rule makes odd product data no longer fail it) keeps
    the previous data and watermark, and the run log and watermark row say it failed."""
    # An incremental refresh takes ROW EXCLUSIVE on its table: a SHARE lock, held to
    # commit, conflicts with it (and with REFRESH CONCURRENTLY's EXCLUSIVE on an mv).
    schema = sql.Identifier(scratch_dashboard.settings.schema)
    count = sql.SQL("select count(*), sum(kwh_deployed) from {}.mv_daily_energy").format(schema)
    with scratch_dashboard.connect() as conn, scratch_dashboard.connect() as holder:
        data_before = conn.execute(count).fetchone()
        mark_before = watermarks(scratch_dashboard)["mv_daily_energy"]
        holder.execute("begin")
        holder.execute(sql.SQL("lock table {}.mv_daily_energy in share mode").format(schema))
        monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=2000")
        try:
            with pytest.raises(DbtError):
                run_dbt(["run", "--select", "mv_daily_energy"], scratch_dashboard.settings)
        finally:
            holder.execute("rollback")
            monkeypatch.delenv("PGOPTIONS")
        assert conn.execute(count).fetchone() == data_before
        assert watermarks(scratch_dashboard)["mv_daily_energy"] == mark_before
        status, _, error = latest_runs(scratch_dashboard)["mv_daily_energy"]
        assert status == "failed"
        assert error is not None and "lock timeout" in error
        failed_at = conn.execute(
            sql.SQL(
                "select last_failed_at from {}.dashquery_watermarks"
                " where view_name = 'mv_daily_energy'"
            ).format(schema)
        ).fetchone()
        assert failed_at is not None and failed_at[0] is not None
        run_dbt(["run", "--select", "mv_daily_energy"], scratch_dashboard.settings)
        assert latest_runs(scratch_dashboard)["mv_daily_energy"][0] == "success"
