"""``dashquery seed``: fill the application schema with synthetic Year 3 data."""

from __future__ import annotations

import click

from dashquery.config import Settings
from dashquery.dev.generate import VOLUMES, generate, large_tenant_scales
from dashquery.errors import DashqueryError


@click.command()
@click.option(
    "--volume",
    type=click.Choice(list(VOLUMES)),
    default="year3",
    show_default=True,
    help="year3: one organization at Year 3 volume; 10x / 100x: 10 / 100 of them.",
)
@click.option("--orgs", type=click.IntRange(min=1), help="Organization count (overrides --volume).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same data.")
@click.option(
    "--days", type=click.IntRange(min=1), default=730, show_default=True, help="Days of history."
)
@click.option(
    "--years",
    type=click.IntRange(min=1, max=10),
    help="Years of history instead of --days (365 days each: --years 10 is 3,650 days).",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply the per-organization volume (0.1 for a quick demo).",
)
@click.option(
    "--large-tenant",
    type=click.FloatRange(min=0, min_open=True),
    help="Make the first organization this many times the Year 3 volume (100 = ~2.16M orders"
    " over 730 days); the others stay at --scale. Generated in parts, memory stays bounded.",
)
@click.option(
    "--replace", is_flag=True, help="Drop the source schema (CASCADE) first, if it exists."
)
@click.option("--source-schema", help="Schema of the application tables [DASHQUERY_SOURCE_SCHEMA].")
@click.option("--timezone", help="Business time zone of the data [DASHQUERY_TIMEZONE].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
def seed(
    volume: str,
    orgs: int | None,
    seed: int,
    days: int,
    years: int | None,
    scale: float,
    large_tenant: float | None,
    replace: bool,
    source_schema: str | None,
    timezone: str | None,
    quiet: bool,
) -> None:
    """Create the application tables and load synthetic data with COPY.

    Each organization gets about DAYS days of history ending now: orders with items,
    opportunities, jobs with time entries, warranty claims, customers, products,
    activities and monthly targets. The database comes from the PG* variables.
    """
    try:
        settings = Settings.from_env(source_schema=source_schema, timezone=timezone)
        n_orgs = VOLUMES[volume] if orgs is None else orgs
        scales = None if large_tenant is None else large_tenant_scales(n_orgs, large_tenant, scale)
        generate(
            "",
            source_schema=settings.source_schema,
            timezone=settings.timezone,
            volume=volume,
            orgs=orgs,
            seed=seed,
            days=365 * years if years else days,
            scale=scale,
            scales=scales,
            replace=replace,
            progress=not quiet,
        )
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc
