"""The benchmark's PNG: latency per path and range, and the reads under load (matplotlib).

matplotlib is imported when a chart is drawn, not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashquery.dev.bench_options import PATHS


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

    if "refresh" not in report:  # ten-year, large-tenant: the statement's server time instead
        _statement_panel(report, bottom)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
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


def _statement_panel(report: Mapping[str, Any], axes: Any) -> None:
    statement = report["statement"]["ranges"]
    boxes = [_box(s["execution_ms"], f"statement {label}") for label, s in statement.items()]
    axes.bxp(boxes, orientation="horizontal")
    axes.set_xscale("log")
    axes.set_xlabel("ms (log)")
    tight = report["cached"]["tight_loop"]
    ratio = f", cache hit / bare GET {tight['ratio_mean']:.2f}x" if "ratio_mean" in tight else ""
    axes.set_title(f"hybrid statement, server side (EXPLAIN ANALYZE execution){ratio}")
