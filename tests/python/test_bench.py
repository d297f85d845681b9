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
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from dashquery import Client
from dashquery.cli import cli
from dashquery.dev.bench import BenchOptions, run_bench, run_capture_bench
from dashquery.dev.bench_capture_report import write_docs_section
from dashquery.dev.bench_report import print_summary, write_outputs
from dashquery.dev.bench_stats import percentile, summarize
from tests.python.helpers import Dashboard, assert_matches_naive

STAT_KEYS = {"n", "min", "mean", "p25", "p50", "p75", "p95", "p99", "max"}


def assert_stats(stats: dict[str, Any], where: str) -> None:
    assert set(stats) >= STAT_KEYS, where
    assert stats["n"] > 0, where
    ordered = [stats[k] for k in ("min", "p25", "p50", "p75", "p95", "p99", "max")]
    assert all(v > 0 for v in ordered), (where, stats)
    assert ordered == sorted(ordered), (where, stats)
    assert stats["min"] <= stats["mean"] <= stats["max"], (where, stats)


@pytest.fixture(scope="module")
def report(dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = BenchOptions(volume="tiny", samples=3, clients=4, seconds=0.5, progress=False)
    result = run_bench(dashboard.settings, options)
    json_path, png_path = write_outputs(result, tmp_path_factory.mktemp("bench"))
    assert png_path.read_bytes().startswith(b"\x89PNG")
    # What the command writes is what a reader gets back (dates, floats and all).
    return json.loads(json_path.read_text())


@pytest.mark.slow
def test_every_section_is_there(report: dict[str, Any], dashboard: Dashboard) -> None:
    assert set(report) == {"meta", "latency", "floors", "refresh", "concurrency", "targets"}
    assert report["meta"]["organizations"] == len(dashboard.organization_ids)
    assert report["meta"]["volume"] == "tiny"
    labels = [r["label"] for r in report["latency"]["ranges"]]
    assert labels[:6] == ["1d", "7d", "30d", "90d", "365d", "730d"] and len(labels) == 7
    assert [r["days"] for r in report["latency"]["ranges"]][:6] == [1, 7, 30, 90, 365, 730]
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
    backfill = refresh["backfill"]
    assert backfill["rows"] == 400 and backfill["change_rows_by_view"]
    assert backfill["exact_before_refresh"]["exact"], backfill["exact_before_refresh"]
    assert backfill["exact_after_refresh"]["exact"], backfill["exact_after_refresh"]
    assert set(report["capture"]["strategies"]) >= {"mv_daily_orders", "mv_current_state"}
    # Left as found: every capture trigger enabled, and every read exact (the rows written
    # without capture were touched with it, so their groups were recorded).
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
