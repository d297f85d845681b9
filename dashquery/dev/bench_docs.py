"""The generated sections of docs/BENCHMARKS.md: one per scenario and volume, between two
comment markers, rendered from a report (its JSON) so that no figure is copied by hand.

``write_docs_section(report, path)`` replaces the report's section in ``path`` (appends it
when missing) and leaves everything outside the markers as it was: the hand-written prose.
The capture scenario's markdown comes from ``bench_capture_report.render_markdown``; the
read scenarios' (``read``, ``ten-year``, ``large-tenant``) from ``render_read_markdown``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashquery.dev import bench_capture_report
from dashquery.dev.bench_capture_report import cpus_text
from dashquery.dev.bench_capture_report import format_ms as _ms


def report_stem(meta: Mapping[str, Any]) -> str:
    """The file name (no suffix) of a report: bench-<volume>, bench-capture-<volume>."""
    volume = "".join(c if c.isalnum() or c == "-" else "_" for c in meta["volume"])
    return f"bench-capture-{volume}" if meta.get("scenario") == "capture" else f"bench-{volume}"


def markers(scenario: str, volume: str) -> tuple[str, str]:
    return (
        f"<!-- dashquery bench --scenario {scenario} --volume {volume}: generated, do not edit -->",
        f"<!-- end of dashquery bench --scenario {scenario} --volume {volume} -->",
    )


def replace_section(path: Path, start: str, end: str, body: str) -> None:
    """Put ``body`` between the ``start`` and ``end`` lines of ``path`` (appended, with its
    markers, when they are not there yet)."""
    block = f"{start}\n{body}{end}\n"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def render_markdown(report: Mapping[str, Any]) -> str:
    if report["meta"].get("scenario") == "capture":
        return bench_capture_report.render_markdown(report)
    return render_read_markdown(report)


def write_docs_section(report: Mapping[str, Any], path: Path) -> None:
    """Replace this report's (scenario, volume) section of ``path`` (append it when missing)."""
    meta = report["meta"]
    start, end = markers(meta.get("scenario", "read"), meta["volume"])
    replace_section(path, start, end, render_markdown(report))


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def _pair(stats: Mapping[str, Any] | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return f"{_ms(stats['p50'])} / {_ms(stats['p95'])}"


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def machine_line(meta: Mapping[str, Any]) -> str:
    host, load = meta["host"], meta["load_average"]
    return (
        f"Machine: {cpus_text(host)},"
        f" PostgreSQL {host['postgres']}, Redis {host.get('redis') or '-'}, Python"
        f" {host['python']} (jit {host.get('jit', '-')} on the server; the read path sets it"
        f" off). Load average (1, 5, 15 min) {_load(load['start'])} at the start,"
        f" {_load(load['end'])} at the end."
    )


def _data_line(meta: Mapping[str, Any]) -> str:
    tenants = meta["tenants"]
    spread = tenants["orders_per_organization"]
    data = meta.get("data")
    text = (
        f"{meta['organizations']} organizations, {meta['orders']:,} orders (per organization"
        f" {spread['min']:,} to {spread['max']:,}, median {spread['median']:,})"
    )
    if data:
        scales = ", ".join(f"{s['organizations']} at {s['scale']:g}x" for s in data["scales"])
        text += (
            f", {data['history_days']:,} days of history, Year-3 scales {scales};"
            f" generated in {data['generate_seconds']:,.0f} s ({data['rows']:,} rows,"
            f" {data['rows_per_second']:,} rows/s), first `dbt run`"
            f" {data['dbt_build_seconds']:,.0f} s"
        )
    read = meta["read_organizations"]
    if meta.get("scenario") == "large-tenant":
        largest = tenants["largest"]
        text += (
            f". Reads: the largest organization only ({largest['orders']:,} orders,"
            f" {_x(tenants['largest_over_median_of_others'])} the median of the others)"
        )
    else:
        text += f". Reads: a random one of {len(read)} organizations per sample"
    return text + "."


def render_read_markdown(report: Mapping[str, Any]) -> str:
    meta, latency = report["meta"], report["latency"]
    stats, ratios = latency["stats_ms"], latency["ratios"]["naive_over_hybrid"]
    statement = report["statement"]["ranges"]
    naive_n = {label: s["n"] for label, s in stats["naive"].items()}
    lines = [
        f"**{_title(meta)}** — run"
        f" {meta['started_at'][:16].replace('T', ' ')} UTC, seed {meta['seed']},"
        f" {meta['samples']} samples per range (naive {min(naive_n.values())} of them),"
        f" {meta['seconds']:,.0f} s measuring. {_data_line(meta)}",
        machine_line(meta),
        "",
        "| range | naive p50 / p95 ms | cold hybrid p50 / p95 ms | cached p50 / p95 ms"
        " | naive ÷ hybrid p50 / p95 | statement: server p50 / p95 ms, client EXECUTE p50 |",
        "|---|---|---|---|---|---|",
    ]
    for r in latency["ranges"]:
        label = r["label"]
        ratio = ratios.get(label, {})
        lines.append(
            f"| {label} ({r['from']} – {r['to']}) | {_pair(stats['naive'][label])}"
            f" | {_pair(stats['hybrid'][label])} | {_pair(stats['cached'][label])}"
            f" | {_x(ratio.get('p50'))} / {_x(ratio.get('p95'))}"
            f" | {_statement_cell(statement.get(label))} |"
        )
    exact = latency["exact"]
    verdict = (
        "all exact"
        if exact["all_exact"]
        else f"**{exact['mismatch_count']} mismatches** ({exact['mismatches'][:3]})"
    )
    lines += [
        "",
        f"Exact: {exact['checked']:,} results (hybrid and cached, every sample with a naive"
        f" read) compared key by key with the naive query in the same run: {verdict}."
        f"{_hybrid_text(latency)}"
        f" Statement: {report['statement']['method']}{_plans_text(report['statement'])}.",
        "",
        _cached_line(report),
        "",
        *_read_scenario_lines(report),
        *bench_capture_report.targets_table(report["targets"]),
    ]
    return "\n".join(lines) + "\n"


def _title(meta: Mapping[str, Any]) -> str:
    scenario, volume = meta.get("scenario", "read"), meta["volume"]
    return f"{scenario} scenario" + ("" if volume == scenario else f", {volume}")


def _hybrid_text(latency: Mapping[str, Any]) -> str:
    method = latency.get("hybrid_method")  # absent from runs before the idle gap
    return f" Cold hybrid: {method}." if method else ""


def _statement_cell(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return "-"
    client = figures.get("client_execute_ms")
    return _pair(figures["execution_ms"]) + (f", {_ms(client['p50'])}" if client else "")


def _plans_text(statement: Mapping[str, Any]) -> str:
    plans, pool = statement.get("plans_while_measured"), statement.get("pool_statement_plans")
    text = ""
    if plans:
        text += f"; plans while measured: {plans['generic']} generic, {plans['custom']} custom"
    if pool:
        text += f" (the pool's own statement: {pool['generic']} generic, {pool['custom']} custom)"
    return text


def _cached_line(report: Mapping[str, Any]) -> str:
    cached, floors = report["cached"], report["floors"]
    tight, days = cached["tight_loop"], cached["range"]["days"]
    hit, get = tight.get("cached_hit", {}), tight.get("bare_get", {})
    floor = ", ".join(f"{name} p50 {_ms(f['p50'])} ms" for name, f in floors.items())
    interleaved = cached["interleaved_ms"]
    if "error" in tight:
        return f"Cache hit, tight loop: not measured ({tight['error']}). Floors: {floor}."
    return (
        f"Cache hit over {days} days, tight loop ({tight['iterations']:,} calls each,"
        f" alternating blocks, {tight['value_bytes']:,}-byte value): hit"
        f" {hit['mean_us']:.1f} µs mean / {hit['p50_us']:.1f} µs p50 against a bare GET"
        f" {get['mean_us']:.1f} / {get['p50_us']:.1f}"
        f" µs: **{tight['ratio_mean']:.2f}x** (p50 {tight['ratio_p50']:.2f}x, CPU"
        f" {tight['ratio_cpu']:.2f}x). Interleaved with the naive and hybrid reads: p50"
        f" {_ms(interleaved['p50'])} ms, p95 {_ms(interleaved['p95'])} ms. Floors: {floor}."
    )


def _read_scenario_lines(report: Mapping[str, Any]) -> list[str]:
    """The read scenario's refresh and concurrency, one line each (absent elsewhere)."""
    if "refresh" not in report:
        return []
    lines = []
    for selector, run in report["refresh"]["selectors"].items():
        lines.append(
            f"Refresh `dbt run --select {selector}`: {run['wall_seconds']:.1f} s wall, dbt's"
            f" run {run['dbt_run_seconds']} s, views' window {run['refresh_window_seconds']} s."
        )
    reads, c = report["refresh"]["reads"], report["concurrency"]
    lines += [
        f"Cold hybrid p95 without / during a refresh: {_ms(reads['without_refresh_ms']['p95'])}"
        f" / {_ms(reads['during_refresh_ms']['p95'])} ms ({reads['during_refresh_basis']}).",
        f"{c['clients']} client threads for {c['seconds']:.0f} s: {c['throughput_rps']:,.0f}"
        f" requests/s, p50 {_ms(c['latency_ms']['p50'])} ms, p95 {_ms(c['latency_ms']['p95'])}"
        f" ms, hit rate {c['hit_rate']:.1%}, errors {c['errors']}.",
        "",
    ]
    return lines
