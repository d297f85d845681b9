"""The benchmark's report as files (JSON and PNG) and as the terminal summary.

The statistics are in ``bench_stats``, the targets in ``bench_targets``, the chart in
``bench_chart``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dashquery.dev.bench_capture_report import print_capture_summary
from dashquery.dev.bench_chart import write_chart
from dashquery.dev.bench_docs import report_stem
from dashquery.dev.bench_options import PATHS


def write_outputs(report: Mapping[str, Any], out: Path) -> tuple[Path, Path | None]:
    """``bench-<volume>.json`` and ``bench-<volume>.png`` in ``out`` (created if missing);
    the volume of a ten-year or large-tenant report starts with its scenario's name.

    The capture scenario writes ``bench-capture-<volume>.json`` and no chart.
    """
    out.mkdir(parents=True, exist_ok=True)
    capture = report["meta"].get("scenario") == "capture"
    stem = report_stem(report["meta"])
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if capture:
        return json_path, None
    write_chart(report, png_path)
    return json_path, png_path


def _ms_text(value: float) -> str:
    # Three significant digits at most, so the table fits an 80-column terminal.
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def print_summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The short terminal version: latency per range, the rest in one line each, targets."""
    console = console or Console()
    if report["meta"].get("scenario") == "capture":
        print_capture_summary(report, console)
        return
    latency, meta = report["latency"], report["meta"]
    read = len(meta.get("read_organizations", ())) or meta["organizations"]
    table = Table(
        title=f"read latency, ms ({meta.get('scenario', 'read')} {meta['volume']},"
        f" {meta['organizations']} orgs, {read} read)"
    )
    for column in ("range", "path", "p50", "p95", "p99", "p50 speed-up"):
        table.add_column(column, justify="left" if column in ("range", "path") else "right")
    # The speed-up on a path's row is over the path above it: naive/hybrid, hybrid/cached.
    speedup_of = {"hybrid": "naive_over_hybrid", "cached": "hybrid_over_cached"}
    for r in latency["ranges"]:
        label = r["label"]
        for name in PATHS:
            stats = latency["stats_ms"][name][label]
            ratio = (
                latency["ratios"][speedup_of[name]][label]["p50"] if name in speedup_of else None
            )
            table.add_row(
                label if name == PATHS[0] else "",
                name,
                *(_ms_text(stats[q]) for q in ("p50", "p95", "p99")),
                f"{ratio:.1f}x" if ratio else "",
                end_section=name == PATHS[-1],
            )
    console.print(table)
    floors = report["floors"]
    floor_text = ", ".join(f"{k} p50 {v['p50']:.3f} ms" for k, v in floors.items())
    console.print(f"floors: {floor_text}")
    exact = latency["exact"]
    console.print(
        f"exact against naive: {exact['checked']} checks,"
        f" {'all exact' if exact['all_exact'] else str(exact['mismatch_count']) + ' MISMATCHES'}"
    )
    tight = report["cached"]["tight_loop"]
    if "error" not in tight:
        console.print(
            f"cache hit tight loop: {tight['cached_hit']['mean_us']:.1f} µs vs bare GET"
            f" {tight['bare_get']['mean_us']:.1f} µs ({tight['ratio_mean']:.2f}x)"
        )
    statement = report["statement"]["ranges"]
    console.print(
        "statement server-side p50 (EXPLAIN ANALYZE): "
        + ", ".join(f"{k} {v['execution_ms']['p50']:.2f} ms" for k, v in statement.items())
    )
    if "refresh" in report:
        _print_refresh_and_concurrency(report, console)
    _print_targets(report, console)
    console.print(f"total {meta['seconds']:.0f} s")


def _print_refresh_and_concurrency(report: Mapping[str, Any], console: Console) -> None:
    for selector, run in report["refresh"]["selectors"].items():
        console.print(
            f"refresh {selector}: {run['wall_seconds']:.1f} s wall, dbt {run['dbt_run_seconds']} s,"
            f" views {run['refresh_window_seconds']} s"
        )
    reads = report["refresh"]["reads"]
    console.print(
        f"hybrid read p95 without / during refresh: {reads['without_refresh_ms']['p95']:.2f}"
        f" / {reads['during_refresh_ms']['p95']:.2f} ms ({reads['during_refresh_basis']})"
    )
    c = report["concurrency"]
    console.print(
        f"{c['clients']} clients for {c['seconds']:.0f} s: {c['throughput_rps']:.0f} req/s,"
        f" p50 {c['latency_ms']['p50']:.2f} ms, p95 {c['latency_ms']['p95']:.2f} ms,"
        f" hit rate {c['hit_rate']:.1%}, errors {c['errors']}"
    )


def _print_targets(report: Mapping[str, Any], console: Console) -> None:
    targets = Table(title="targets")
    for column in ("target", "measured", "threshold", "pass", "volume"):
        targets.add_column(column)
    for t in report["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:.3g} {t['unit']}"
        verdict = {True: "[green]pass", False: "[red]FAIL", None: "-"}[t["passed"]]
        volume = t["volume"] + (
            "" if t["at_defined_volume"] else f" (defined at {t['defined_at']})"
        )
        targets.add_row(
            t["name"],
            measured,
            f"{t['comparison']} {t['threshold']:g} {t['unit']}",
            verdict,
            volume,
        )
    console.print(targets)
