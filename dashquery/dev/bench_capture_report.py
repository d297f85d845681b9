"""The capture scenario's report: markdown for docs/BENCHMARKS.md, and the terminal summary.

``render_markdown(report)`` turns a capture report (its JSON) into the section the bench
command writes into the docs between two markers, one section per volume, so no figure is
copied by hand: ``bench_docs.write_docs_section`` puts it between the markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console


def cpus_text(host: Mapping[str, Any]) -> str:
    """The machine's CPUs as every generated section names them: "2 CPUs (AMD EPYC)"."""
    return f"{host.get('cpus', '?')} CPUs ({host.get('cpu_model', 'model not recorded')})"


def format_ms(value: float | None) -> str:
    """A millisecond figure for a docs table (also the read sections')."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**fail**", None: "-"}[passed]


def render_markdown(report: Mapping[str, Any]) -> str:
    meta, capture = report["meta"], report["capture"]
    writes, refresh = capture["write_overhead"], capture["refresh"]
    load = meta["load_average"]
    lines = [
        f"**Capture scenario, {meta['volume']}** — {meta['started_at'][:16].replace('T', ' ')}"
        f" UTC, {meta['organizations']} organizations, {meta['orders']:,} orders, seed"
        f" {meta['seed']}, {meta['seconds']:.0f} s. Machine: {cpus_text(meta['host'])},"
        f" PostgreSQL {meta['host']['postgres']}"
        + (
            f" (jit {meta['host']['jit']}, jit_above_cost {meta['host']['jit_above_cost']})"
            if "jit" in meta["host"]
            else ""
        )
        + "; load average (1, 5, 15 min)"
        f" {', '.join(f'{v:.2f}' for v in load['start'])} at the start,"
        f" {', '.join(f'{v:.2f}' for v in load['end'])} at the end.",
        "Materialized relations: "
        + ", ".join(f"`{name}` {kind}" for name, kind in capture["strategies"].items())
        + ".",
        "",
        "Without capture, two ways: "
        + "; ".join(f"**{mode}** = {text}" for mode, text in writes["without_capture"].items())
        + ".",
        "",
        *_single_row_table(writes["single_row"], writes.get("commit_settings")),
    ]
    durable = writes.get("single_row_durable") or {}
    if durable.get("single_row"):
        lines += [
            "",
            "Again with durable commits (PostgreSQL's defaults; the bench stack runs without"
            " them): every commit waits for its WAL flush.",
            "",
            *_single_row_table(durable["single_row"], durable["commit_settings"]),
        ]
    elif durable.get("skipped"):
        lines += ["", f"Durable-commit pass skipped: {durable['skipped']}."]
    lines += [
        "",
        "| bulk load | with capture s | triggers disabled s | replica s"
        " | ratio of best to triggers disabled / to replica | change rows added |",
        "|---|---|---|---|---|---|",
    ]
    for table, entry in writes["bulk"].items():
        secs, ratio = entry["seconds"], entry["ratio_of_best"]
        lines.append(
            f"| {entry['rows']:,} rows into {table} | "
            + " | ".join(
                ", ".join(f"{v:.2f}" for v in secs[m])
                for m in ("capture", "triggers_disabled", "replica")
            )
            + f" | {_x(ratio['vs_triggers_disabled'])} / {_x(ratio['vs_replica'])}"
            f" | {', '.join(f'{n:,}' for n in entry['change_rows_added'])} |"
        )
    bulk_refresh = writes["refresh_after_bulk"]
    changes, after = refresh["changes"], refresh["after_changes"]
    single, backfill = refresh["single_row"], refresh["backfill"]
    exact_before = backfill["exact_before_refresh"]
    exact_after = backfill["exact_after_refresh"]
    verdict_before, verdict_after = _exact_text(exact_before), _exact_text(exact_after)
    lines += [
        "",
        f"Change table after the bulk loads (each load deleted again afterwards): "
        f"{bulk_refresh['change_rows_before']:,} rows; after the next `tag:15min` refresh:"
        f" {bulk_refresh['change_rows_after']:,}{_left(bulk_refresh)} (views' own time"
        f" {format_ms(bulk_refresh['views_ms_sum'])} ms).",
        "",
        "| refresh | views' own time (sum of duration_ms) | per view ms | dbt wall s"
        " | change rows before → after |",
        "|---|---|---|---|---|",
        _refresh_row(
            f"`tag:15min` after {changes['total_rows']:,} changed rows"
            f" ({', '.join(f'{t} {n}' for t, n in changes['rows'].items())}) over"
            f" {changes['organizations']} organizations and {changes['days']} days (oldest"
            f" {changes['oldest_day_back']} days back)",
            after,
        ),
        *(
            _refresh_row(f"`{single['selector']}` after one changed old order (run {i + 1})", run)
            for i, run in enumerate(single["runs"])
        ),
        *_post_bulk_rows(refresh.get("after_changes_post_bulk")),
        _refresh_row(
            f"`tag:15min` after a backfill of {backfill['rows']:,} rows into one organization"
            f" ({backfill['insert_seconds']:.2f} s to insert)",
            backfill["refresh"],
        ),
        "",
        f"Backfill reads (`get_metrics`, cache off, against the naive query over"
        f" {exact_before['ranges']} ranges): before the refresh"
        f" {verdict_before}, after it {verdict_after}.{_tests_text(backfill)}",
        "",
        *targets_table(report["targets"]),
    ]
    return "\n".join(lines) + "\n"


def _post_bulk_rows(post: Mapping[str, Any] | None) -> list[str]:
    """The same 1,000-row refresh again after the bulk loads (reports since 2026-12-04)."""
    if not post:
        return []
    label = (
        f"`tag:15min` after {post['total_rows']:,} more changed rows, right after the bulk"
        f" loads and their refresh ({post['organizations']} organizations, {post['days']} days)"
    )
    return [_refresh_row(label, post["refresh"])]


def targets_table(targets: list[Mapping[str, Any]]) -> list[str]:
    """The markdown table of a report's targets (every scenario's)."""
    lines = ["| target | threshold | measured | pass | volume |", "|---|---|---|---|---|"]
    lines.extend(f"| {' | '.join(target_cells(t))} |" for t in targets)
    return lines


def target_cells(t: Mapping[str, Any]) -> list[str]:
    """One target's cells: description, threshold, measured, pass, volume."""
    measured = "-" if t["measured"] is None else f"{t['measured']:.4g} {t['unit']}"
    volume = t["volume"] + ("" if t["at_defined_volume"] else f" (defined at {t['defined_at']})")
    return [
        t["description"],
        f"{t['comparison']} {t['threshold']:g} {t['unit']}",
        measured,
        _verdict(t["passed"]),
        volume,
    ]


def _exact_text(check: Mapping[str, Any]) -> str:
    return "exact" if check["exact"] else f"NOT exact: {check['mismatches']}"


def _tests_text(backfill: Mapping[str, Any]) -> str:
    """The materialized relations' dbt tests after every cadence's refresh (since 2026-12-04)."""
    tests = backfill.get("materialized_tests")
    if tests is None:
        return ""
    verdict = "all passed" if tests["passed"] else f"FAILED: {', '.join(tests['failed'])}"
    return (
        f" Then every cadence refreshed and `dbt test --select {tests['selector']}` (each"
        f" materialized relation against its daily view and the application tables): {verdict}."
    )


def _refresh_row(label: str, run: Mapping[str, Any]) -> str:
    per_view = ", ".join(
        f"{v.removeprefix('mv_')} {format_ms(ms)}" for v, ms in run["views_ms"].items()
    )
    return (
        f"| {label} | {format_ms(run['views_ms_sum'])} ms | {per_view} | {run['wall_seconds']:.1f}"
        f" | {run['change_rows_before']:,} → {run['change_rows_after']:,}{_left(run)} |"
    )


def _left(run: Mapping[str, Any]) -> str:
    left = run.get("change_rows_left_by_view")
    if not left:
        return ""
    return " (left: " + ", ".join(f"{view} {n:,}" for view, n in left.items()) + ")"


def print_capture_summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(render_markdown(report), highlight=False, markup=False)


def _single_row_table(entries: Mapping[str, Any], settings: Mapping[str, str] | None) -> list[str]:
    """The single-row transactions of one pass, the commit settings it ran under above."""
    shown = ", ".join(f"{k} {v}" for k, v in (settings or {}).items())
    lines = [
        f"Commit settings: {shown}." if shown else "",
        "",
        "| single-row transaction | with capture p50 / p95 ms | triggers disabled p50 / p95 ms"
        " | replica p50 / p95 ms | ratio to triggers disabled p50 / p95"
        " | ratio to replica p50 / p95 |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        ms, ratio = entry["ms"], entry["ratio"]
        lines.append(
            f"| {name} ({entry['transactions_per_mode']} per mode) | "
            + " | ".join(
                f"{format_ms(ms[m]['p50'])} / {format_ms(ms[m]['p95'])}"
                for m in ("capture", "triggers_disabled", "replica")
            )
            + " | "
            + " | ".join(
                f"{_x(ratio[b]['p50'])} / {_x(ratio[b]['p95'])}"
                for b in ("vs_triggers_disabled", "vs_replica")
            )
            + " |"
        )
    return lines
