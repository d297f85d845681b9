"""``dashquery bench``: measure the read paths, refresh and concurrency (dashquery.dev.bench)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.console import Console

from dashquery.config import Settings
from dashquery.dev.bench import BenchOptions, run_bench, run_capture_bench
from dashquery.dev.bench_dbt import generated_database
from dashquery.dev.bench_options import (
    LARGE_FACTOR,
    LARGE_TENANT_ORGS,
    SCENARIOS,
    SMALL_SCALE,
    TEN_YEAR_ORGS,
    scenario_shape,
)
from dashquery.dev.bench_report import print_summary, write_outputs
from dashquery.dev.bench_summary import write_docs
from dashquery.dev.generate import VOLUMES
from dashquery.errors import DashqueryError


@click.command()
@click.option(
    "--scenario",
    type=click.Choice(SCENARIOS),
    default="read",
    show_default=True,
    help="read: the read paths, refresh and concurrency; capture: what change capture costs"
    " writers and what a refresh costs after changes (changes the database's data);"
    f" ten-year: the read paths on 3,650 days of history at Year-3 density ({TEN_YEAR_ORGS}"
    " organizations by default, as issue 14's held-out benchmark: comparable figures, a"
    " few minutes to build); large-tenant: the read paths of one organization at"
    f" {LARGE_FACTOR:g}x Year 3 (~2.16M orders) beside {LARGE_TENANT_ORGS - 1} at"
    f" {SMALL_SCALE:g}x (~24M rows: tens of minutes to generate and build).",
)
@click.option(
    "--history-days",
    type=click.IntRange(min=1),
    help="Days of history to generate [730; ten-year: 3,650].",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply every organization's generated volume (0.01 for a smoke run).",
)
@click.option(
    "--large-factor",
    type=click.FloatRange(min=0, min_open=True),
    default=LARGE_FACTOR,
    show_default=True,
    help="large-tenant: the large organization's volume in Year-3 units.",
)
@click.option(
    "--small-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=SMALL_SCALE,
    show_default=True,
    help="large-tenant: the other organizations' volume in Year-3 units (the issue allows"
    " Year 3 or smaller; they are not read, 1.0 doubles the rows to build).",
)
@click.option(
    "--naive-samples",
    type=click.IntRange(min=1),
    help="Naive reads per range, spread over the samples [all; large-tenant: 10, each"
    " takes seconds]. Each is also the reference its samples' results are checked against.",
)
@click.option(
    "--single-rows",
    type=click.IntRange(min=2),
    default=300,
    show_default=True,
    help="capture: single-row transactions per operation, with and without capture each.",
)
@click.option(
    "--bulk-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="capture: rows per bulk load and in the backfill.",
)
@click.option(
    "--docs",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/BENCHMARKS.md"),
    show_default=True,
    help="Rewrite this file's generated section for the scenario and volume (when the file"
    " exists), and its summary of every report in --out (where it has the summary's markers).",
)
@click.option("--no-docs", is_flag=True, help="Leave --docs alone (a trial run).")
@click.option(
    "--render",
    "render_json",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Measure nothing; rewrite --docs' section from this bench JSON (any scenario), and"
    " the summary from the reports beside it.",
)
@click.option(
    "--label",
    help="The report's volume label (default: the volume, or 'existing' with --existing).",
)
@click.option(
    "--volume",
    type=click.Choice(list(VOLUMES)),
    default="10x",
    show_default=True,
    help="Data to generate: year3 = 1 organization at Year 3 volume, 10x / 100x = 10 / 100.",
)
@click.option(
    "--orgs",
    type=click.IntRange(min=1),
    help="Generate this many organizations instead [ten-year: 2, large-tenant: 100 = 1 large"
    " + 99 small] (with --existing: sample at most this many).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=60,
    show_default=True,
    help="Timed reads per path and range.",
)
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Concurrent clients.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Duration of the concurrency run.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench"),
    show_default=True,
    help="Folder for bench-<volume>.json and bench-<volume>.png (bench-ten-year.json, ...).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds the data and the picks."
)
@click.option(
    "--stack-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".stack/bench"),
    show_default=True,
    help="Local stack for generated data (never the development .stack).",
)
@click.option("--keep", is_flag=True, help="Keep the stack and the bench database afterwards.")
@click.option(
    "--existing",
    is_flag=True,
    help="Measure the database of the PG*/DASHQUERY_* settings: no stack, no generation.",
)
def bench(
    scenario: str,
    history_days: int | None,
    scale: float,
    large_factor: float,
    small_scale: float,
    naive_samples: int | None,
    single_rows: int,
    bulk_rows: int,
    docs: Path,
    no_docs: bool,
    render_json: Path | None,
    label: str | None,
    volume: str,
    orgs: int | None,
    samples: int,
    clients: int,
    seconds: float,
    out: Path,
    seed: int,
    stack_dir: Path,
    keep: bool,
    existing: bool,
) -> None:
    """Benchmark the naive query, the hybrid read and the cache on the same data.

    By default starts a local PostgreSQL + Redis under --stack-dir, generates --volume data
    into a fresh database, runs dbt, then measures:

    \b
      1. p50/p95/p99 of the naive contract query, the cold hybrid read (cache bypassed)
         and the cached read, for 1-730 days ending today and 90 days a year ago;
         beside them a Redis GET and a pooled SELECT 1;
      2. `dbt run --select tag:15min` and `tag:5min`, and hybrid reads during a refresh;
      3. --clients threads sharing one Client for --seconds (throughput, p95, hit rate);
      4. the project's targets, pass or fail (never an error exit).

    With --existing the database must already be built (`dbt run`); its materialized
    views are refreshed and its organizations' cached results invalidated. Writes
    bench-<volume>.json and .png to --out, rewrites that volume's generated section of
    --docs, and prints a summary. Every timed hybrid and cached read whose sample ran the
    naive query is checked against it, key by key (latency.exact, target reads_exact).

    Besides, every read scenario measures a cache hit against a bare Redis GET of the same
    value in a tight loop (cached) and the hybrid statement's server-side time, EXPLAIN
    ANALYZE of its generic plan (statement), with issue 14's targets.

    --scenario ten-year and large-tenant measure the three read paths over 1, 30, 730 and
    3,650 days, the cache hit and the statement (no refresh, no concurrency) on their own
    data: 3,650 days of history; or one organization at --large-factor x Year 3 beside
    --orgs - 1 at --small-scale, reading the large one only.

    --scenario capture measures instead (issue 13): on the built database, `dbt run
    --select tag:15min` after 1,000 changed rows and one block's refresh after one changed
    row; then single-row INSERT/UPDATE transactions and bulk loads on orders and
    order_items with and without the capture triggers (the single rows again with durable
    commits, fsync and synchronous_commit on, on its own stack: not with --existing), the
    change table's size, the 1,000-row refresh again after those loads, and a backfill
    into one organization with reads checked against the naive query, then every cadence
    refreshed and `dbt test` of the materialized relations. It writes
    bench-capture-<volume>.json and rewrites that volume's generated section of --docs.
    """
    started = time.perf_counter()
    console = Console()
    if render_json is not None:
        rendered = json.loads(render_json.read_text())
        meta = rendered.get("meta", {}) if isinstance(rendered, dict) else {}
        if meta.get("scenario", "read") not in SCENARIOS or "volume" not in meta:
            raise click.ClickException(f"{render_json} is not a dashquery bench report")
        console.print(f"wrote {write_docs(rendered, docs, render_json.parent)}", highlight=False)
        return
    run = run_capture_bench if scenario == "capture" else run_bench
    extra: dict[str, Any] = {
        "scenario": scenario,
        "single_rows": single_rows,
        "bulk_rows": bulk_rows,
        "naive_samples": naive_samples or (10 if scenario == "large-tenant" else None),
    }
    shape = scenario_shape(
        scenario, volume=volume, orgs=orgs, days=history_days, scale=scale,
        large_factor=large_factor, small_scale=small_scale,
    )  # fmt: skip
    try:
        if existing:
            label = label or ("existing" if orgs is None else f"existing_{orgs}_orgs")
            options = _options(label, orgs, samples, clients, seconds, seed, extra)
            report = run(Settings.from_env(), options)
        else:
            label = label or shape.label
            with generated_database(
                stack_dir, shape, seed=seed, keep=keep, progress=True
            ) as database:
                # Its own server: the capture scenario may measure durable commits too.
                own = extra | {"durable_commits": True}
                options = _options(label, None, samples, clients, seconds, seed, own)
                report = run(database.settings, options)
                report["meta"]["data"] = shape.to_dict() | database.setup
                if keep:
                    console.print(
                        f"kept: database {database.name}; `dashquery stack env --dir {stack_dir}`",
                        highlight=False,
                    )
    except (DashqueryError, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    report["meta"]["total_seconds_with_setup"] = round(time.perf_counter() - started, 1)
    json_path, png_path = write_outputs(report, out)
    print_summary(report, console)
    wrote = [str(json_path)] + ([str(png_path)] if png_path else [])
    if docs.exists() and not no_docs:
        wrote.append(write_docs(report, docs, out))
    console.print(f"wrote {' and '.join(wrote)}", highlight=False)


def _options(
    label: str,
    orgs: int | None,
    samples: int,
    clients: int,
    seconds: float,
    seed: int,
    extra: dict[str, Any],
) -> BenchOptions:
    return BenchOptions(
        volume=label,
        orgs=orgs,
        samples=samples,
        clients=clients,
        seconds=seconds,
        seed=seed,
        **extra,
    )
