"""A smoke test of ``dashquery bench`` on the session's tiny data: shape and consistency only.

No timing is asserted: the targets are measured and reported, and CI machines differ. The
bench refreshes the views of the shared ``dashboard`` (dbt run of two tags): the data does
not change, so every other test's expectations hold.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import random
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from dashquery import Client
from dashquery.cli import cli
from dashquery.config import Settings
from dashquery.dev.bench import BenchOptions, run_bench, run_capture_bench
from dashquery.dev.bench_capture import measure_write_overhead, progress_steps
from dashquery.dev.bench_capture_refresh import MATERIALIZED_MODELS, materialized_tests
from dashquery.dev.bench_dbt import build_database
from dashquery.dev.bench_docs import markers, report_stem, write_docs_section
from dashquery.dev.bench_durable import commit_settings
from dashquery.dev.bench_options import DataShape, scenario_shape
from dashquery.dev.bench_report import print_summary, write_outputs
from dashquery.dev.bench_stats import percentile, summarize
from dashquery.dev.stack import LocalStack
from tests.python.helpers import SCRATCH_SEED, Dashboard, assert_matches_naive, build_dashboard
from tests.python.materialized_support import materialized_differences

STAT_KEYS = {"n", "min", "mean", "p25", "p50", "p75", "p95", "p99", "max"}
# Issue 14's targets, in every read scenario's report.
FLOOR_TARGETS = {
    "hybrid_3650d_over_1d", "statement_730d_server_ms", "cached_over_bare_get", "reads_exact"
}  # fmt: skip


def assert_stats(stats: dict[str, Any], where: str) -> None:
    assert set(stats) >= STAT_KEYS, where
    assert stats["n"] > 0, where
    ordered = [stats[k] for k in ("min", "p25", "p50", "p75", "p95", "p99", "max")]
    assert all(v > 0 for v in ordered), (where, stats)
    assert ordered == sorted(ordered), (where, stats)
    assert stats["min"] <= stats["mean"] <= stats["max"], (where, stats)


@pytest.fixture(scope="module")
def report(dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = BenchOptions(
        volume="tiny", samples=3, clients=4, seconds=0.5, progress=False,
        cached_iterations=300, statement_samples=3,
    )  # fmt: skip
    result = run_bench(dashboard.settings, options)
    json_path, png_path = write_outputs(result, tmp_path_factory.mktemp("bench"))
    assert png_path.read_bytes().startswith(b"\x89PNG")
    # What the command writes is what a reader gets back (dates, floats and all).
    return json.loads(json_path.read_text())


@pytest.mark.slow
def test_every_section_is_there(report: dict[str, Any], dashboard: Dashboard) -> None:
    assert set(report) == {
        "meta", "latency", "floors", "cached", "statement", "refresh", "concurrency", "targets"
    }  # fmt: skip
    assert report["meta"]["organizations"] == len(dashboard.organization_ids)
    assert report["meta"]["volume"] == "tiny" and report["meta"]["scenario"] == "read"
    assert report["meta"]["host"]["cpu_model"] and report["meta"]["host"]["redis"]
    labels = [r["label"] for r in report["latency"]["ranges"]]
    assert labels[:7] == ["1d", "7d", "30d", "90d", "365d", "730d", "3650d"] and len(labels) == 8
    assert [r["days"] for r in report["latency"]["ranges"]][:7] == [1, 7, 30, 90, 365, 730, 3650]
    assert set(report["statement"]["ranges"]) == set(labels)
    assert set(report["refresh"]["selectors"]) == {"tag:15min", "tag:5min"}
    assert set(report["floors"]) == {"redis_get", "pg_select_1"}


@pytest.mark.slow
def test_latency_figures_are_consistent(report: dict[str, Any]) -> None:
    latency = report["latency"]
    for path in ("naive", "hybrid", "cached"):
        for r in latency["ranges"]:
            stats = latency["stats_ms"][path][r["label"]]
            assert_stats(stats, f"{path} {r['label']}")
            assert stats["n"] == 3 == len(latency["samples_ms"][path][r["label"]])
    for name, by_range in latency["ratios"].items():
        slow, fast = name.split("_over_")
        for label, ratio in by_range.items():
            expected = (
                latency["stats_ms"][slow][label]["p50"] / latency["stats_ms"][fast][label]["p50"]
            )
            assert ratio["p50"] == pytest.approx(expected, rel=0.01, abs=0.01)
    assert latency["cached_hit_rate"] == 1.0  # warmed before sampling, TTL minutes away
    for name in ("redis_get", "pg_select_1"):
        assert_stats(report["floors"][name], name)
    assert report["floors"]["redis_get"]["value_bytes"] > 100
    assert_read_parts(report, naive_per_range=3)


def assert_read_parts(report: dict[str, Any], *, naive_per_range: int) -> None:
    """What every read scenario reports beside the latencies: the exactness checks, the
    cache hit's tight loop and the statement's server-side time; the targets' verdicts."""
    latency = report["latency"]
    ranges = [r["label"] for r in latency["ranges"]]
    exact = latency["exact"]
    # Each naive read checked the hybrid and the cached result of its sample.
    assert exact["checked"] == 2 * naive_per_range * len(ranges), exact
    assert exact["all_exact"] and exact["mismatch_count"] == 0, exact["mismatches"]
    for label in ranges:
        assert latency["stats_ms"]["naive"][label]["n"] == naive_per_range
    tight = report["cached"]["tight_loop"]
    assert tight["served_from"] == ["cache"], tight
    for loop in ("bare_get", "cached_hit"):
        assert tight[loop]["mean_us"] > 0 and tight[loop]["p50_us"] > 0
    assert tight["ratio_mean"] == pytest.approx(
        tight["cached_hit"]["mean_us"] / tight["bare_get"]["mean_us"], rel=0.01
    )
    assert report["cached"]["range"]["days"] == 730
    assert report["cached"]["interleaved_ms"] == latency["stats_ms"]["cached"]["730d"]
    statement = report["statement"]
    assert "EXPLAIN" in statement["method"] and statement["organization"]
    for label, figures in statement["ranges"].items():
        assert_stats(figures["execution_ms"], f"statement {label}")
        assert_stats(figures["client_execute_ms"], f"EXECUTE {label}")
        assert figures["execution_ms"]["n"] == statement["samples"]
    plans = statement["plans_while_measured"]  # one plan per EXPLAIN and EXECUTE
    assert plans["generic"] + plans["custom"] >= 2 * statement["samples"] * len(ranges)
    assert statement["pool_statement_plans"] is not None
    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) >= FLOOR_TARGETS
    assert targets["reads_exact"]["measured"] == 1.0 and targets["reads_exact"]["passed"]
    assert targets["statement_730d_server_ms"]["measured"] == pytest.approx(
        statement["ranges"]["730d"]["execution_ms"]["p50"], rel=1e-3
    )
    hybrid = latency["stats_ms"]["hybrid"]
    assert targets["hybrid_3650d_over_1d"]["measured"] == pytest.approx(
        hybrid["3650d"]["p50"] / hybrid["1d"]["p50"], rel=1e-3
    )
    for t in targets.values():
        assert t["measured"] is not None and t["passed"] is not None, t


@pytest.mark.slow
def test_refresh_and_concurrency_figures_are_consistent(report: dict[str, Any]) -> None:
    for selector, run in report["refresh"]["selectors"].items():
        assert run["statuses"] == ["success"], selector
        assert run["wall_seconds"] > 0 and run["dbt_run_seconds"] > 0, selector
        assert run["wall_seconds"] >= run["dbt_run_seconds"] >= run["refresh_window_seconds"] >= 0
        assert run["views_ms"] and all(ms >= 0 for ms in run["views_ms"].values())
    assert "mv_current_state" in report["refresh"]["selectors"]["tag:5min"]["views_ms"]
    reads = report["refresh"]["reads"]
    for key in ("without_refresh_ms", "during_refresh_ms", "during_dbt_command_ms"):
        assert_stats(reads[key], key)
    assert reads["p95_ratio"] == pytest.approx(
        reads["during_refresh_ms"]["p95"] / reads["without_refresh_ms"]["p95"], rel=1e-3
    )
    c = report["concurrency"]
    assert c["clients"] == 4 and c["errors"] == 0 and c["requests"] > 0
    assert_stats(c["latency_ms"], "concurrency")
    assert c["latency_ms"]["n"] == c["requests"]
    assert 0.0 <= c["hit_rate"] <= 1.0
    assert c["throughput_rps"] == pytest.approx(c["requests"] / c["seconds"], rel=1e-3)


@pytest.mark.slow
def test_targets_report_measure_threshold_and_volume(report: dict[str, Any]) -> None:
    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) == {
        "cached_p50",
        "hybrid_p95_730d",
        "hybrid_speedup_730d",
        "refresh_15min_seconds",
        "read_p95_during_refresh",
        "concurrent_p95",
        "concurrent_hit_rate",
        *FLOOR_TARGETS,
    }
    for t in targets.values():
        assert t["measured"] is not None and t["measured"] > 0, t
        assert t["passed"] == (
            t["measured"] <= t["threshold"]
            if t["comparison"] == "<="
            else t["measured"] >= t["threshold"]
        ), t
        assert t["volume"] == "tiny"
    # Targets defined at 10x say that they were measured at another volume.
    assert not targets["hybrid_p95_730d"]["at_defined_volume"]
    assert "defined at 10x" in targets["hybrid_p95_730d"]["note"]
    assert targets["cached_p50"]["at_defined_volume"]
    assert "50 clients" in targets["concurrent_p95"]["note"]


@pytest.mark.slow
def test_terminal_summary_shows_ranges_and_targets(report: dict[str, Any]) -> None:
    console = Console(file=io.StringIO(), width=100)
    print_summary(report, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in ("730d", "90d a year ago", "naive", "hybrid", "cached", "hybrid_p95_730d"):
        assert expected in text


def test_summaries_match_numpy_style_percentiles() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(sorted(values), 50) == 3.0
    assert percentile(sorted(values), 95) == pytest.approx(4.8)
    assert math.isnan(percentile([], 50))
    stats = summarize(values)
    assert (stats["n"], stats["min"], stats["p25"], stats["max"]) == (5, 1.0, 2.0, 5.0)
    assert summarize([])["n"] == 0


def test_help_explains_the_command() -> None:
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--volume", "--orgs", "--samples", "--clients", "--seconds", "--out"):
        assert option in result.output
    for option in ("--seed", "--keep", "--existing", "--scenario", "--bulk-rows", "--docs"):
        assert option in result.output
    for text in ("ten-year", "large-tenant", "--history-days", "--scale", "--large-factor",
                 "--small-scale", "--naive-samples", "--render", "--no-docs"):  # fmt: skip
        assert text in result.output


def test_existing_without_organizations_is_a_clean_error(
    fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    """--existing on a database without the application tables fails with a message."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
    env = {names[k]: str(v) for k, v in conninfo_to_dict(fresh_db).items() if k in names}
    env |= {"DASHQUERY_REDIS_URL": redis_url, "DASHQUERY_SOURCE_SCHEMA": "app"}
    result = CliRunner().invoke(cli, ["bench", "--existing", "--out", str(tmp_path)], env=env)
    assert result.exit_code == 1, result.output
    assert "Error: no table app.organizations" in result.output
    assert not list(tmp_path.iterdir())


# The capture scenario (issue 13 items 5 and 6) changes data: it runs on a scratch database.
CAPTURE_OPTIONS = BenchOptions(
    volume="tiny",
    seed=3,
    progress=False,
    single_rows=4,
    bulk_rows=400,
    bulk_repeats=2,
    single_repeats=1,
    durable_commits=True,  # the suite's own throwaway server
)


@pytest.fixture(scope="module")
def capture_report(
    scratch_dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    result = run_capture_bench(scratch_dashboard.settings, CAPTURE_OPTIONS)
    json_path, png_path = write_outputs(result, tmp_path_factory.mktemp("bench"))
    assert json_path.name == "bench-capture-tiny.json" and png_path is None
    return json.loads(json_path.read_text())


@pytest.mark.slow
def test_capture_scenario_measures_both_modes_and_the_refreshes(
    capture_report: dict[str, Any], scratch_dashboard: Dashboard
) -> None:
    report = capture_report
    assert set(report) == {"meta", "capture", "targets"}
    meta = report["meta"]
    assert meta["scenario"] == "capture" and meta["bulk_rows"] == 400
    assert len(meta["load_average"]["start"]) == 3 and meta["host"]["cpus"] > 0
    writes = report["capture"]["write_overhead"]
    assert "session_replication_role = replica" in writes["without_capture"]["replica"]
    assert "DISABLE TRIGGER" in writes["without_capture"]["triggers_disabled"]
    assert set(writes["single_row"]) == {
        "orders_insert", "orders_update", "order_items_insert", "order_items_update"
    }  # fmt: skip
    for name, entry in writes["single_row"].items():
        for mode in ("capture", "triggers_disabled", "replica"):
            assert_stats(entry["ms"][mode], f"{name} {mode}")
            assert entry["ms"][mode]["n"] == 4
        for base in ("triggers_disabled", "replica"):
            assert entry["ratio"][f"vs_{base}"]["p50"] == pytest.approx(
                entry["ms"]["capture"]["p50"] / entry["ms"][base]["p50"], rel=0.01
            )
    # The stack commits without fsync; the second pass ran with durable commits, and the
    # server has its own settings again afterwards.
    off = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    assert writes["commit_settings"] == off
    durable = writes["single_row_durable"]
    assert durable["commit_settings"] == dict.fromkeys(off, "on")
    assert set(durable["single_row"]) == set(writes["single_row"])
    for name, entry in durable["single_row"].items():
        assert entry["ms"]["capture"]["n"] == 4, name
    with scratch_dashboard.connect() as conn:
        assert commit_settings(conn) == off
    for table in ("orders", "order_items"):
        bulk = writes["bulk"][table]
        assert [len(bulk["seconds"][m]) for m in ("capture", "triggers_disabled", "replica")] == [
            2, 2, 2
        ]  # fmt: skip
        # Only the captured loads add change rows (the disabled triggers were enabled again).
        assert len(bulk["change_rows_added"]) == 2 and all(n > 0 for n in bulk["change_rows_added"])
    # The bulk loads left change rows; the next refresh consumes the ones it recomputed.
    after_bulk = writes["refresh_after_bulk"]
    assert after_bulk["change_rows_before"] > 0
    assert after_bulk["statuses"] == ["success"]
    refresh = report["capture"]["refresh"]
    changes = refresh["changes"]
    assert changes["total_rows"] > 0 and 1 <= changes["organizations"] <= 2
    assert changes["change_rows_by_view"], changes
    assert refresh["after_changes"]["views_ms_sum"] > 0
    assert set(refresh["after_changes"]["views_ms"]) >= {"mv_daily_orders", "mv_daily_jobs"}
    assert len(refresh["single_row"]["duration_ms"]) == 1
    assert refresh["single_row"]["median_ms"] is not None
    # The refreshes after changes ran on the built database, before the bulk loads' dead
    # rows, and once more after them (the refresh log's ids give the order).
    post_bulk = refresh["after_changes_post_bulk"]
    assert post_bulk["total_rows"] > 0 and post_bulk["refresh"]["statuses"] == ["success"]
    single_ids = [i for run in refresh["single_row"]["runs"] for i in run["run_ids"]]
    assert max(refresh["after_changes"]["run_ids"]) < min(single_ids)
    assert max(single_ids) < min(after_bulk["run_ids"])
    assert max(after_bulk["run_ids"]) < min(post_bulk["refresh"]["run_ids"])
    backfill = refresh["backfill"]
    assert backfill["rows"] == 400 and backfill["change_rows_by_view"]
    assert backfill["exact_before_refresh"]["exact"], backfill["exact_before_refresh"]
    assert backfill["exact_after_refresh"]["exact"], backfill["exact_after_refresh"]
    assert backfill["materialized_tests"] == {
        "selector": MATERIALIZED_MODELS, "passed": True, "failed": []
    }  # fmt: skip
    assert set(report["capture"]["strategies"]) >= {"mv_daily_orders", "mv_current_state"}
    # Left as found: every capture trigger enabled, every read exact, and nothing stale: the
    # writes made without capture were undone with it, so their groups were recorded and the
    # scenario's last refresh of every cadence (materialized_tests) left each materialized
    # relation equal to its daily view (a long range's distinct count would hide a stale
    # customer day; this does not).
    settings = scratch_dashboard.settings
    with scratch_dashboard.connect() as conn:
        states = conn.execute(
            "select distinct t.tgenabled::text from pg_trigger t join pg_class c"
            " on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and t.tgname like 'dq\\_capture\\_%%'",
            (settings.source_schema,),
        ).fetchall()
        assert states == [("O",)]
        today = dt.datetime.now(settings.zone).date()
        with Client(settings=settings, cache=False) as client:
            for org in scratch_dashboard.organization_ids:
                for days in (800, 30):
                    start = today - dt.timedelta(days=days)
                    assert_matches_naive(conn, settings, client.get_metrics(org, start, today))
        assert materialized_differences(conn, settings.schema) == {}


@pytest.mark.slow
def test_the_materialized_tests_catch_a_write_the_capture_never_saw(
    stack: LocalStack, redis_url: str
) -> None:
    """The capture scenario's last check (``materialized_tests``) fails on a stale group."""
    dashboard = build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)
    settings = dashboard.settings
    assert materialized_tests(settings) == {
        "selector": MATERIALIZED_MODELS, "passed": True, "failed": []
    }  # fmt: skip
    with dashboard.connect() as conn:
        # Triggers bypassed: a new order day for a customer, recorded nowhere.
        conn.execute("set session_replication_role = replica")
        conn.execute(
            sql.SQL(
                "insert into {src}.orders (id, organization_id, customer_id, status,"
                " total_cents, created_at, updated_at) select gen_random_uuid(),"
                " organization_id, id, 'confirmed', 100, now() - interval '500 days', now()"
                " from {src}.customers where organization_id = %s order by id limit 1"
            ).format(src=sql.Identifier(settings.source_schema)),
            (dashboard.organization_ids[0],),
        )
    found = materialized_tests(settings)
    assert found["passed"] is False
    assert {"mv_daily_orders_totals", "mv_order_customer_days_totals"} <= set(found["failed"])


def test_the_write_overhead_progress_total_is_what_it_advances(
    stack: LocalStack, redis_url: str
) -> None:
    dashboard = build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)
    advances: list[None] = []
    measure_write_overhead(
        dashboard.settings,
        random.Random(1),
        single_rows=30,  # two blocks of BLOCK per mode and operation
        bulk_rows=5,
        bulk_repeats=1,
        advance=lambda: advances.append(None),
    )
    assert len(advances) == progress_steps(30, 1, durable=False) == 4 * 3 * 2 + 2 * 3


@pytest.mark.slow
def test_capture_targets_and_the_generated_docs_section(
    capture_report: dict[str, Any], tmp_path: Path
) -> None:
    targets = {t["name"]: t for t in capture_report["targets"]}
    assert set(targets) == {
        "capture_single_row_overhead",
        "capture_bulk_overhead",
        "capture_single_row_overhead_vs_replica",
        "capture_bulk_overhead_vs_replica",
        "capture_single_row_overhead_durable",
        "refresh_15min_after_1000_changes",
        "refresh_single_row_ms",
        "backfill_reads_exact",
    }
    assert targets["capture_single_row_overhead"]["threshold"] == 1.15
    assert targets["capture_bulk_overhead"]["threshold"] == 1.30
    assert targets["refresh_15min_after_1000_changes"]["defined_at"] == "100x"
    assert "defined at 100x" in targets["refresh_single_row_ms"]["note"]
    assert targets["backfill_reads_exact"]["passed"] is True
    for t in targets.values():
        assert t["measured"] is not None and t["passed"] is not None, t
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n\nhand-written text\n")
    write_docs_section(capture_report, docs)
    first = docs.read_text()
    assert first.startswith("# Benchmarks\n\nhand-written text\n")
    assert "capture --volume tiny: generated" in first and "orders_insert" in first
    assert "Commit settings: fsync on, synchronous_commit on, full_page_writes on." in first
    # The machine is named as in the read sections: runs on two hosts sit side by side.
    host = capture_report["meta"]["host"]
    assert f"Machine: {host['cpus']} CPUs ({host['cpu_model']})," in first
    assert "more changed rows, right after the bulk loads and their refresh" in first
    # Rewritten in place, not appended twice; other text kept.
    write_docs_section(capture_report, docs)
    assert docs.read_text() == first
    # The command re-renders a section from a saved JSON without measuring anything.
    saved, rendered = tmp_path / "bench-capture-tiny.json", tmp_path / "RENDERED.md"
    saved.write_text(json.dumps(capture_report))
    rendered.write_text("# Benchmarks\n\nhand-written text\n")
    args = ["bench", "--render", str(saved), "--docs", str(rendered)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert rendered.read_text() == first
    console = Console(file=io.StringIO(), width=120)
    print_summary(capture_report, console)
    assert "single-row transaction" in console.file.getvalue()  # type: ignore[attr-defined]


# The ten-year and large-tenant scenarios (issue 14 item 2) at a tiny scale, each on a
# database of its own generated with the scenario's shape in the fixtures' stack.
def _scenario_report(
    stack: LocalStack, redis_url: str, tmp: Path, shape: DataShape, scenario: str
) -> dict[str, Any]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    settings = Settings(
        conninfo=stack.conninfo(name), source_schema="sc_src", schema="sc_dash",
        redis_url=redis_url,
    )  # fmt: skip
    try:
        setup = build_database(settings, shape, seed=5, progress=False)
        options = BenchOptions(
            volume=shape.label, scenario=scenario, samples=3, naive_samples=2,
            cached_iterations=300, statement_samples=3, progress=False,
        )  # fmt: skip
        result = run_bench(settings, options)
        result["meta"]["data"] = shape.to_dict() | setup  # as the command records it
        with psycopg.connect(settings.conninfo) as conn:
            result["test_orders"] = conn.execute(
                "select organization_id::text, count(*), min((created_at at time zone %s)::date),"
                " max((created_at at time zone %s)::date) from sc_src.orders group by 1",
                (settings.timezone, settings.timezone),
            ).fetchall()
            result["test_today"] = dt.datetime.now(settings.zone).date()
    finally:
        with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
            drop = sql.SQL("drop database if exists {} with (force)")
            conn.execute(drop.format(sql.Identifier(name)))
    json_path, png_path = write_outputs(result, tmp)
    assert png_path is not None and png_path.read_bytes().startswith(b"\x89PNG")
    assert json_path.name == f"{report_stem(result['meta'])}.json"
    assert json_path.name.startswith(f"bench-{scenario}")
    return json.loads(json_path.read_text())


@pytest.fixture(scope="module")
def ten_year_report(
    stack: LocalStack, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    shape = scenario_shape("ten-year", scale=0.01)
    assert shape.days == 3650 and len(shape.scales) == 2
    return _scenario_report(stack, redis_url, tmp_path_factory.mktemp("ten"), shape, "ten-year")


@pytest.fixture(scope="module")
def large_tenant_report(
    stack: LocalStack, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # Small tenants at Year 3 x scale, the large one at 100 x scale: ~100x the rows.
    shape = scenario_shape("large-tenant", orgs=4, days=120, scale=0.01, small_scale=1.0)
    assert shape.scales == (1.0, 0.01, 0.01, 0.01)
    tmp = tmp_path_factory.mktemp("large")
    return _scenario_report(stack, redis_url, tmp, shape, "large-tenant")


@pytest.mark.slow
def test_ten_year_scenario_reads_ten_years_exactly(ten_year_report: dict[str, Any]) -> None:
    report = ten_year_report
    assert set(report) - {"test_orders", "test_today"} == {
        "meta", "latency", "floors", "cached", "statement", "targets"
    }  # fmt: skip
    meta = report["meta"]
    assert meta["scenario"] == "ten-year" and meta["volume"] == "ten-year_x0.01"
    assert meta["data"]["history_days"] == 3650 and meta["data"]["rows"] > 0
    assert meta["data"]["generate_seconds"] > 0 and meta["data"]["dbt_build_seconds"] > 0
    assert len(meta["read_organizations"]) == 2 == meta["organizations"]
    assert [r["days"] for r in report["latency"]["ranges"]] == [1, 30, 730, 3650]
    assert_read_parts(report, naive_per_range=2)
    # The generated rows span the ten years the 3,650-day range reads.
    today = dt.date.fromisoformat(report["test_today"])
    for _, count, earliest, latest in report["test_orders"]:
        assert count > 500
        earliest, latest = dt.date.fromisoformat(earliest), dt.date.fromisoformat(latest)
        assert (today - earliest).days >= 3600 and (today - latest).days <= 30
    targets = {t["name"] for t in report["targets"]}
    assert targets == FLOOR_TARGETS | {"hybrid_speedup_730d"}


@pytest.mark.slow
def test_large_tenant_scenario_reads_the_large_tenant(large_tenant_report: dict[str, Any]) -> None:
    report = large_tenant_report
    meta = report["meta"]
    assert meta["scenario"] == "large-tenant" and meta["organizations"] == 4
    orders = {org: count for org, count, _, _ in report["test_orders"]}
    largest = max(orders, key=orders.__getitem__)
    assert meta["read_organizations"] == [largest] == [meta["tenants"]["largest"]["id"]]
    small = sorted(n for org, n in orders.items() if org != largest)
    assert 60 < orders[largest] / small[1] < 160, orders  # ~100x the median small tenant
    assert meta["tenants"]["largest_over_median_of_others"] == pytest.approx(
        orders[largest] / small[1], rel=0.01
    )
    assert report["statement"]["organization"] == largest
    assert_read_parts(report, naive_per_range=2)
    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) == FLOOR_TARGETS | {"hybrid_speedup_730d", "large_tenant_speedup_730d"}
    large = targets["large_tenant_speedup_730d"]
    assert large["threshold"] == 1000.0 and large["defined_at"] == "large-tenant"
    assert large["measured"] == targets["hybrid_speedup_730d"]["measured"]
    assert "defined at large-tenant" in large["note"]  # measured on the tiny shape


@pytest.mark.slow
def test_docs_sections_are_generated_from_the_json(
    ten_year_report: dict[str, Any], report: dict[str, Any], tmp_path: Path
) -> None:
    """Change the JSON, re-render: the section's table changes; hand-written text stays."""
    docs = tmp_path / "BENCHMARKS.md"
    prose = "# Benchmarks\n\nhand-written text\n"
    docs.write_text(prose + "\n## Later\n\nmore prose\n")
    saved = tmp_path / "bench-ten-year.json"
    saved.write_text(json.dumps(ten_year_report))
    render = ["bench", "--render", str(saved), "--docs", str(docs)]
    result = CliRunner().invoke(cli, render)
    assert result.exit_code == 0, result.output
    first = docs.read_text()
    start, end = markers("ten-year", ten_year_report["meta"]["volume"])
    assert first.startswith(prose) and "more prose" in first
    assert first.count(start) == 1 and first.count(end) == 1
    section = first[first.index(start) : first.index(end)]
    meta = ten_year_report["meta"]
    for text in (
        "| 3650d (",
        "naive ÷ hybrid",
        meta["host"]["cpu_model"],
        meta["host"]["redis"],
        "load average",
        "all exact",
        "statement_730d_server_ms"[:0] + "server side",
    ):
        assert text.lower() in section.lower(), text  # fmt: skip
    for value in meta["load_average"]["start"]:
        assert f"{value:.2f}" in section
    # Another scenario's section sits beside it; rewriting one leaves the other.
    write_docs_section(report, docs)
    assert first.rstrip("\n") in docs.read_text()
    both = docs.read_text()
    assert both.count("<!-- dashquery bench --scenario read --volume tiny: generated") == 1
    changed = json.loads(saved.read_text())
    changed["latency"]["stats_ms"]["naive"]["730d"]["p50"] = 98765.0
    saved.write_text(json.dumps(changed))
    assert "98,765" not in both
    result = CliRunner().invoke(cli, render)
    assert result.exit_code == 0, result.output
    after = docs.read_text()
    assert "98,765 /" in after and after.count(start) == 1
    assert after.replace(after[after.index(start) : after.index(end)], "") == both.replace(
        both[both.index(start) : both.index(end)], ""
    )  # only the section changed
    # Not a report: refused, the file untouched.
    saved.write_text(json.dumps({"meta": {"scenario": "nope"}}))
    result = CliRunner().invoke(cli, render)
    assert result.exit_code != 0 and docs.read_text() == after


def test_naive_turns_spread_evenly_and_statement_text_is_server_sql() -> None:
    from dashquery.dev.bench_latency import _naive_turns
    from dashquery.dev.bench_statement import server_text

    turns = _naive_turns(60, 10)
    assert sum(turns) == 10 and len(turns) == 60
    assert max(i for i, t in enumerate(turns) if t) >= 50  # spread, not the first ten
    assert all(_naive_turns(5, None)) and sum(_naive_turns(3, 10)) == 3
    text = server_text(
        b"select %(organization_id)s, %(date_from)s::date, %(date_to)s::date, 'a%%b'"
    )
    assert text == "select $1, $2::date, $3::date, 'a%b'"
    with pytest.raises(ValueError, match="placeholder"):
        server_text(b"select %(organization_id)s, %(other)s")
    # The read path's own rendering (native $n, sent as it is) is kept as it is.
    assert server_text(b"select $1, $2::date, 'a%%b'") == "select $1, $2::date, 'a%%b'"
