"""The benchmark's report: statistics, the targets, and its JSON, PNG and terminal forms.

Targets are measured and reported (pass or fail), never asserted: a slow machine must still
produce a report. A target defined "at 10x" that was measured at another volume says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

PATHS = ("naive", "hybrid", "cached")
TARGET_VOLUME = "10x"
TARGET_CLIENTS = 50
_PERCENTILES = {"p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - started) * 1000


def progress_bar(enabled: bool) -> Progress:
    """Progress on stderr (stdout keeps the summary); ``enabled=False`` draws nothing."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        # Redrawing takes the GIL from the threads being timed: twice a second is plenty.
        refresh_per_second=2,
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """n, min, mean, quartiles, p95, p99 and max of latencies in ms (NaN-free: n=0 is zeros)."""
    if not values:
        return {"n": 0, "min": 0.0, "mean": 0.0, **dict.fromkeys(_PERCENTILES, 0.0), "max": 0.0}
    ordered = sorted(values)
    stats: dict[str, Any] = {"n": len(ordered), "min": ordered[0]}
    stats["mean"] = sum(ordered) / len(ordered)
    stats |= {name: percentile(ordered, q) for name, q in _PERCENTILES.items()}
    stats["max"] = ordered[-1]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}


def ratios(
    slow: Mapping[str, Mapping[str, float]], fast: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float | None]]:
    """Per range, slow / fast at p50, p95 and p99 (None when fast measured 0)."""
    return {
        label: {
            q: round(slow[label][q] / fast[label][q], 2) if fast[label][q] else None
            for q in ("p50", "p95", "p99")
        }
        for label in slow
    }


# -- targets ----------------------------------------------------------------------------------


def _target(
    name: str,
    description: str,
    measured: float | None,
    comparison: str,
    threshold: float,
    unit: str,
    volume: str,
    *,
    defined_at: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    passed = None
    if measured is not None:
        passed = measured <= threshold if comparison == "<=" else measured >= threshold
    notes = [note] if note else []
    if defined_at and volume != defined_at:
        notes.append(f"target defined at {defined_at}; measured at {volume}")
    return {
        "name": name,
        "description": description,
        "measured": None if measured is None else round(measured, 4),
        "comparison": comparison,
        "threshold": threshold,
        "unit": unit,
        "passed": passed,
        "volume": volume,
        "defined_at": defined_at,
        "at_defined_volume": defined_at is None or volume == defined_at,
        "note": "; ".join(notes) or None,
    }


def evaluate_targets(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    volume = report["meta"]["volume"]
    stats = report["latency"]["stats_ms"]
    cached_p50 = {label: s["p50"] for label, s in stats["cached"].items()}
    worst = max(cached_p50, key=cached_p50.__getitem__)
    hybrid_730, naive_730 = stats["hybrid"].get("730d"), stats["naive"].get("730d")
    speedup = None
    if hybrid_730 and naive_730 and hybrid_730["p50"]:
        speedup = naive_730["p50"] / hybrid_730["p50"]
    refresh = report["refresh"]["selectors"].get("tag:15min")
    concurrency = report["concurrency"]
    clients_note = None
    if concurrency["clients"] != TARGET_CLIENTS:
        clients_note = (
            f"target defined for {TARGET_CLIENTS} clients; measured with {concurrency['clients']}"
        )
    return [
        _target(
            "cached_p50",
            f"cached read p50, worst range ({worst})",
            cached_p50[worst], "<=", 1.0, "ms", volume,
        ),
        _target(
            "hybrid_p95_730d",
            "cold hybrid read (Client.compute) p95 over 730 days",
            hybrid_730["p95"] if hybrid_730 else None, "<=", 20.0, "ms", volume,
            defined_at=TARGET_VOLUME,
        ),
        _target(
            "hybrid_speedup_730d",
            "naive p50 / cold hybrid p50 over 730 days",
            speedup, ">=", 50.0, "x", volume,
            defined_at=TARGET_VOLUME,
        ),
        _target(
            "refresh_15min_seconds",
            "wall time of `dbt run --select tag:15min` (dbt start-up and parse included)",
            refresh["wall_seconds"] if refresh else None, "<=", 10.0, "s", volume,
            defined_at=TARGET_VOLUME,
        ),
        _target(
            "read_p95_during_refresh",
            "cold hybrid read p95 during a tag:15min refresh / without",
            report["refresh"]["reads"]["p95_ratio"], "<=", 2.0, "x", volume,
        ),
        _target(
            "concurrent_p95",
            f"get_metrics p95 with {concurrency['clients']} concurrent clients",
            concurrency["latency_ms"]["p95"], "<=", 20.0, "ms", volume,
            note=clients_note,
        ),
        _target(
            "concurrent_hit_rate",
            f"cache hit rate with {concurrency['clients']} concurrent clients",
            concurrency["hit_rate"], ">=", 0.8, "ratio", volume,
            note=clients_note,
        ),
    ]  # fmt: skip


# -- outputs ----------------------------------------------------------------------------------


def write_outputs(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """``bench-<volume>.json`` and ``bench-<volume>.png`` in ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench-" + "".join(c if c.isalnum() else "_" for c in report["meta"]["volume"])
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_chart(report, png_path)
    return json_path, png_path


def _box(stats: Mapping[str, float], label: str) -> dict[str, Any]:
    # Box p25-p75, whiskers min-p99, the max as the one outlier drawn.
    return {
        "label": label,
        "med": stats["p50"],
        "q1": stats["p25"],
        "q3": stats["p75"],
        "whislo": stats["min"],
        "whishi": stats["p99"],
        "fliers": [stats["max"]],
    }


def write_chart(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    latency = report["latency"]
    labels = [r["label"] for r in latency["ranges"]]
    colors = {"naive": "#c0504d", "hybrid": "#4f81bd", "cached": "#9bbb59"}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [3, 2]}, layout="constrained"
    )
    width = 0.25
    for offset, path_name in enumerate(PATHS):
        boxes = [_box(latency["stats_ms"][path_name][label], label) for label in labels]
        positions = [i + (offset - 1) * width for i in range(len(labels))]
        drawn = top.bxp(
            boxes, positions=positions, widths=width * 0.9, patch_artist=True, manage_ticks=False
        )
        for patch in drawn["boxes"]:
            patch.set_facecolor(colors[path_name])
        top.plot([], [], color=colors[path_name], linewidth=8, label=path_name)
    for name, style in (("redis_get", ":"), ("pg_select_1", "--")):
        if name in report["floors"]:
            top.axhline(
                report["floors"][name]["p50"], color="grey", linestyle=style, label=f"{name} p50"
            )
    top.set_xticks(range(len(labels)), labels)
    top.set_yscale("log")
    top.set_ylabel("ms (log)")
    meta = report["meta"]
    top.set_title(
        f"read latency per path and range — {meta['volume']}, {meta['organizations']} orgs,"
        f" {meta['samples']} samples each (box p25-p75, whiskers min-p99, dot max)"
    )
    top.legend(loc="upper left")

    reads = report["refresh"]["reads"]
    concurrency = report["concurrency"]
    bottom_boxes = [
        _box(reads["without_refresh_ms"], "hybrid, no refresh"),
        _box(reads["during_refresh_ms"], f"hybrid, during {reads['selector']}"),
        _box(concurrency["latency_ms"], f"get_metrics, {concurrency['clients']} clients"),
    ]
    bottom.bxp(bottom_boxes, orientation="horizontal")
    bottom.set_xscale("log")
    bottom.set_xlabel("ms (log)")
    bottom.set_title(
        f"under load — {concurrency['throughput_rps']:.0f} req/s,"
        f" hit rate {concurrency['hit_rate']:.0%}"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ms_text(value: float) -> str:
    # Three significant digits at most, so the table fits an 80-column terminal.
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def print_summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The short terminal version: latency per range, the rest in one line each, targets."""
    console = console or Console()
    latency, meta = report["latency"], report["meta"]
    table = Table(title=f"read latency, ms ({meta['volume']}, {meta['organizations']} orgs)")
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
    console.print(f"total {meta['seconds']:.0f} s")
