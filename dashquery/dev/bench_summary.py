"""The summary at the top of docs/BENCHMARKS.md: every target of every saved report, its
latest measurement, when and on which machine, in one table.

The scenario sections below it hold each run whole; a reader who wants "where does each
target stand" would otherwise read five sections measured on different days (and, since
2026-12-03, on two machines). Rendered from the JSON reports in the benchmark's output
folder (``bench/``), never typed: ``write_summary`` rewrites it whenever a run or
``--render`` rewrites a section, and only where the document already has its markers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dashquery.dev.bench_capture_report import cpus_text, target_cells
from dashquery.dev.bench_docs import replace_section, write_docs_section

START = "<!-- dashquery bench: summary of the reports in bench/, generated, do not edit -->"
END = "<!-- end of dashquery bench summary -->"
# The order of the sections in the document.
_SCENARIOS = ("read", "ten-year", "large-tenant", "capture")


def load_reports(folder: Path) -> list[dict[str, Any]]:
    """The bench reports saved in ``folder`` (bench-*.json with meta and targets), in the
    document's order; other JSON files are passed over."""
    reports = []
    for path in sorted(folder.glob("bench-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and {"meta", "targets"} <= report.keys():
            reports.append(report)
    return sorted(reports, key=_order)


def _order(report: Mapping[str, Any]) -> tuple[int, list[Any]]:
    scenario = report["meta"].get("scenario", "read")
    rank = _SCENARIOS.index(scenario) if scenario in _SCENARIOS else len(_SCENARIOS)
    # 10x before 100x: numbers in the volume compare as numbers
    volume = re.split(r"(\d+)", str(report["meta"].get("volume", "")))
    return rank, [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in volume]


def render_summary(reports: Sequence[Mapping[str, Any]]) -> str:
    """The markdown table: one row per target of every report, with its run."""
    lines = [
        "| target | threshold | measured | pass | volume | run (UTC), machine |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        meta = report["meta"]
        started = str(meta.get("started_at", "?"))[:16].replace("T", " ")
        run = f"{started}, {cpus_text(meta.get('host', {}))}"
        lines.extend(f"| {' | '.join([*target_cells(t), run])} |" for t in report["targets"])
    failed = sum(t["passed"] is False for r in reports for t in r["targets"])
    total = sum(len(r["targets"]) for r in reports)
    lines += ["", f"{total - failed} of {total} targets met in the latest run of each report."]
    return "\n".join(lines) + "\n"


def write_summary(folder: Path, docs: Path) -> bool:
    """Rewrite the summary in ``docs`` from the reports in ``folder``; False (nothing
    written) when the document has no summary markers or the folder no report."""
    if not docs.exists() or START not in docs.read_text():
        return False
    reports = load_reports(folder)
    if not reports:
        return False
    replace_section(docs, START, END, render_summary(reports))
    return True


def write_docs(report: Mapping[str, Any], docs: Path, reports_dir: Path) -> str:
    """Write the report's section of ``docs`` and the summary from ``reports_dir``; returns
    what was written, for the command's "wrote ..." line."""
    write_docs_section(report, docs)
    summary = ", summary" if write_summary(reports_dir, docs) else ""
    return f"{docs} (section {report['meta']['volume']}{summary})"
