"""The generated summary of docs/BENCHMARKS.md (dashquery.dev.bench_summary): every target of
every saved report, with its run's date and machine, only between its markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dashquery.dev.bench_summary import END, START, load_reports, write_summary


def _report(scenario: str, volume: str, started: str, cpu: str, **targets: float) -> dict:
    """A report as the benchmark saves it, cut to what the summary reads."""
    return {
        "meta": {
            "scenario": scenario,
            "volume": volume,
            "started_at": started,
            "host": {"cpus": 2, "cpu_model": cpu},
        },
        "targets": [
            {
                "name": name,
                "description": f"the {name} figure",
                "measured": measured,
                "comparison": "<=",
                "threshold": 1.5,
                "unit": "ms",
                "passed": measured <= 1.5,
                "volume": volume,
                "defined_at": None,
                "at_defined_volume": True,
            }
            for name, measured in targets.items()
        ],
    }


def _save(folder: Path, name: str, report: Any) -> None:
    (folder / name).write_text(json.dumps(report))


def test_every_target_of_every_report_with_its_run_in_document_order(tmp_path: Path) -> None:
    _save(
        tmp_path,
        "bench-capture-100x.json",
        _report("capture", "100x", "2026-12-02T15:19:20", "Intel Xeon", bulk=1.331),
    )
    _save(
        tmp_path,
        "bench-capture-10x.json",
        _report("capture", "10x", "2026-12-04T01:31:57", "AMD EPYC", refresh=14.23),
    )
    _save(
        tmp_path,
        "bench-10x.json",
        _report("read", "10x", "2026-12-03T11:29:29", "AMD EPYC", statement=2.3625, cached=0.47),
    )
    _save(
        tmp_path,
        "bench-large-tenant.json",
        _report("large-tenant", "large-tenant", "2026-12-02T15:35:00", "Intel Xeon", speedup=1.2),
    )
    _save(tmp_path, "bench-notes.json", {"not": "a report"})  # passed over
    (tmp_path / "bench-broken.json").write_text("{")  # passed over
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text(f"# Benchmarks\n\nintro\n\n{START}\nstale summary\n{END}\n\n## Read\nprose\n")

    assert write_summary(tmp_path, docs)
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n") and text.endswith("\n## Read\nprose\n")
    assert "stale summary" not in text
    rows = [line for line in text.splitlines() if line.startswith("| the ")]
    # read, then large-tenant, then capture (10x before 100x): the document's order
    assert [row.split(" | ")[0] for row in rows] == [
        "| the statement figure",
        "| the cached figure",
        "| the speedup figure",
        "| the refresh figure",
        "| the bulk figure",
    ]
    assert rows[0] == (
        "| the statement figure | <= 1.5 ms | 2.362 ms | **fail** | 10x"
        " | 2026-12-03 11:29, 2 CPUs (AMD EPYC) |"
    )
    assert "| 1.2 ms | pass | large-tenant | 2026-12-02 15:35, 2 CPUs (Intel Xeon) |" in rows[2]
    assert "3 of 5 targets met" in text
    # rewritten in place from the same reports: the same text
    assert write_summary(tmp_path, docs)
    assert docs.read_text() == text


def test_no_markers_or_no_reports_writes_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n")
    _save(tmp_path, "bench-10x.json", _report("read", "10x", "2026-12-03T11:29:29", "AMD", s=1.0))
    assert not write_summary(tmp_path, docs)
    assert docs.read_text() == "# Benchmarks\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    docs.write_text(f"{START}\nkept\n{END}\n")
    assert not write_summary(empty, docs)
    assert docs.read_text() == f"{START}\nkept\n{END}\n"
    assert load_reports(empty) == []
