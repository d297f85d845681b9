"""``dashquery bench``: measure the read paths, refresh and concurrency (dashquery.dev.bench)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import psycopg
from rich.console import Console

from dashquery.config import Settings
from dashquery.dev.bench import BenchOptions, run_bench, run_capture_bench
from dashquery.dev.bench_capture_report import write_docs_section
from dashquery.dev.bench_dbt import generated_database
from dashquery.dev.bench_options import SCENARIOS
from dashquery.dev.bench_report import print_summary, write_outputs
from dashquery.dev.generate import VOLUMES
from dashquery.errors import DashqueryError


@click.command()
@click.option(
    "--scenario",
    type=click.Choice(SCENARIOS),
    default="read",
    show_default=True,
    help="read: the read paths, refresh and concurrency; capture: what change capture costs"
    " writers and what a refresh costs after changes (changes the database's data).",
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
    help="capture: rewrite this file's generated section for the volume (when it exists).",
)
@click.option(
    "--render",
    "render_json",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="capture: measure nothing; rewrite --docs' section from this bench-capture JSON.",
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
    help="Generate this many organizations instead (with --existing: sample at most this many).",
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
    help="Folder for bench-<volume>.json and bench-<volume>.png.",
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
    single_rows: int,
    bulk_rows: int,
    docs: Path,
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
    bench-<volume>.json and .png to --out and prints a summary.

    --scenario capture measures instead (issue 13): single-row INSERT/UPDATE transactions
    and bulk loads on orders and order_items with and without the capture triggers, the
    change table's size, `dbt run --select tag:15min` after 1,000 changed rows, one
    block's refresh after one changed row, and a backfill into one organization with reads
    checked against the naive query. It writes bench-capture-<volume>.json and rewrites
    that volume's generated section of --docs.
    """
    started = time.perf_counter()
    console = Console()
    if render_json is not None:
        rendered = json.loads(render_json.read_text())
        if rendered.get("meta", {}).get("scenario") != "capture":
            raise click.ClickException(f"{render_json} is not a capture scenario report")
        write_docs_section(rendered, docs)
        console.print(f"wrote {docs} (section {rendered['meta']['volume']})", highlight=False)
        return
    run = run_capture_bench if scenario == "capture" else run_bench
    extra = {"single_rows": single_rows, "bulk_rows": bulk_rows}
    try:
        if existing:
            label = label or ("existing" if orgs is None else f"existing_{orgs}_orgs")
            options = _options(label, orgs, samples, clients, seconds, seed, extra)
            report = run(Settings.from_env(), options)
        else:
            label = label or (volume if orgs is None or orgs == VOLUMES[volume] else f"{orgs}_orgs")
            with generated_database(
                stack_dir, volume=volume, orgs=orgs, seed=seed, keep=keep, progress=True
            ) as (settings, database):
                options = _options(label, None, samples, clients, seconds, seed, extra)
                report = run(settings, options)
                if keep:
                    console.print(
                        f"kept: database {database}; `dashquery stack env --dir {stack_dir}`",
                        highlight=False,
                    )
    except (DashqueryError, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    report["meta"]["total_seconds_with_setup"] = round(time.perf_counter() - started, 1)
    json_path, png_path = write_outputs(report, out)
    print_summary(report, console)
    wrote = [str(json_path)] + ([str(png_path)] if png_path else [])
    if scenario == "capture" and docs.exists():
        write_docs_section(report, docs)
        wrote.append(f"{docs} (section {report['meta']['volume']})")
    console.print(f"wrote {' and '.join(wrote)}", highlight=False)


def _options(
    label: str,
    orgs: int | None,
    samples: int,
    clients: int,
    seconds: float,
    seed: int,
    extra: dict[str, int],
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
