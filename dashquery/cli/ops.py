"""``dashquery status``, ``warm`` and ``refresh``: operating the views (docs/OPERATIONS.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from prometheus_client import REGISTRY, write_to_textfile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.errors import DashqueryError
from dashquery.ops.dbt_runner import run_dbt
from dashquery.ops.refresh_queue import drain_queue
from dashquery.ops.status import collect_status
from dashquery.ops.status_report import print_status
from dashquery.ops.warm import active_organizations, common_ranges, warm, warm_requests

EXIT_UNHEALTHY = 2


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--prometheus-textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the gauges here (node_exporter textfile collector format).",
)
def status(as_json: bool, prometheus_textfile: Path | None) -> None:
    """Health of every materialized view; exits 2 when any needs attention.

    For each view: watermark and its age, cadence, rows, last refresh time, last run and
    error. A view needs attention when it is

    \b
      missing  expected by the read path but not built (or never refreshed);
      failed   its last run failed, or is still 'running' although nobody holds
               the view's advisory lock (the dbt process died);
      outdated refreshed from an older definition of a daily view it reads
               than the deployed one (a partial deploy): its block is read live
               until `dbt run --select <view>`;
      overdue  its watermark is older than 2 x its cadence (dbt var
               dashquery_cadence_minutes): one missed refresh is tolerated.

    \b
    The deployment needs attention when dbt built the views for another
    DASHQUERY_TIMEZONE or DASHQUERY_SOURCE_SCHEMA than these settings, or Redis is
    unreachable or has a maxmemory policy that can lose an invalidation.

    Off a terminal the table is printed in plain full-width columns; --json has every
    field. Exit status: 0 healthy, 2 attention needed, 1 the status could not be read.
    Ages use the database clock. Also updates the Prometheus gauges.
    """
    try:
        report = collect_status(_settings())
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc
    if prometheus_textfile:
        write_to_textfile(str(prometheus_textfile), REGISTRY)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_status(report)
    if not report.healthy:
        click.get_current_context().exit(EXIT_UNHEALTHY)


@click.command(name="warm")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Keys computed at once (each holds one PostgreSQL connection).",
)
@click.option(
    "--days-active",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Warm organizations with activities in this many days.",
)
@click.option("--force", is_flag=True, help="Recompute keys already cached (restarts their TTL).")
def warm_command(concurrency: int, days_active: int, force: bool) -> None:
    """Pre-compute the common ranges of every active organization into the cache.

    Ranges, in the business time zone: today, this week (Monday to today), this month,
    the last 30 days (today included). Exits 1 when a key failed or Redis is unavailable.
    """
    settings = _settings()
    ranges = common_ranges(dt.datetime.now(settings.zone).date())
    try:
        organizations = active_organizations(settings, days_active)
        with Client(settings=settings, pool_size=concurrency) as client:
            progress = Progress(
                TextColumn("warming"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            with progress:
                task = progress.add_task("warm", total=len(warm_requests(organizations, ranges)))
                report = warm(
                    client,
                    organizations,
                    ranges,
                    concurrency=concurrency,
                    force=force,
                    on_done=lambda: progress.advance(task),
                )
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, (start, end) in ranges.items():
        click.echo(f"  {name:<13} {start} .. {end}")
    click.echo(
        f"warmed {report.organizations} organization(s) x {len(ranges)} ranges:"
        f" {report.computed} computed, {report.already_cached} already cached,"
        f" {len(report.failures)} failed, in {report.seconds:.1f}s"
    )
    for failure in report.failures:
        click.echo(f"  failed {failure.organization_id} {failure.range_name}: {failure.error}")
    if report.failures:
        raise click.ClickException(f"{len(report.failures)} key(s) could not be warmed")
    if not report.cache_available:
        raise click.ClickException("Redis is unavailable: results were computed but not cached")


@click.command()
@click.option("--queued", is_flag=True, help="Refresh the views queued by dashquery.notify.")
@click.option(
    "--select", "selection", metavar="SELECTOR", help="dbt selector, e.g. tag:15min or a model."
)
def refresh(queued: bool, selection: str | None) -> None:
    """Refresh materialized views: the queue (--queued) or a dbt selection (--select).

    --select runs `dbt run --select SELECTOR` and exits with dbt's status. --queued takes
    every queued view (two drains never take the same entry), runs one `dbt run` for all
    of them, invalidates the cache of the organizations that asked, and puts back any view
    whose refresh failed or was skipped (another run held its lock). A view already being
    refreshed by cron is skipped by its advisory lock, never refreshed twice at once.
    """
    if queued == bool(selection):
        raise click.UsageError("give exactly one of --queued or --select")
    settings = _settings()
    if selection:
        try:
            result = run_dbt(["run", "--select", selection], settings, check=False)
        except DashqueryError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(result.output, nl=False)
        click.get_current_context().exit(result.returncode)
    try:
        with Client(settings=settings, pool_size=1) as client:
            report = drain_queue(client)
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.unknown:
        click.echo(f"ignored unknown queued view(s): {', '.join(report.unknown)}", err=True)
    if not report.taken:
        click.echo("queue empty")
        return
    seconds = f" in {report.dbt.seconds:.1f}s" if report.dbt else ""
    click.echo(f"refreshed: {', '.join(report.refreshed) or 'nothing'}{seconds}")
    if report.requeued:
        click.echo(f"put back in the queue: {', '.join(report.requeued)}")
    if report.invalidated_all:
        click.echo("invalidated the whole cache (a queue entry named no organization)")
    elif report.invalidated:
        click.echo(f"invalidated {len(report.invalidated)} organization(s)")
    if not report.ok:
        assert report.dbt is not None
        # dbt's own words first, then the one line every failing command ends with
        click.echo("\n".join(report.dbt.output.splitlines()[-30:]), err=True)
        raise click.ClickException(
            f"dbt failed (exit {report.dbt.returncode}); its output is above"
        )
