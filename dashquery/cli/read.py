"""``dashquery metrics``, ``invalidate`` and ``orgs``: the read path from a shell."""

from __future__ import annotations

import json

import click
import psycopg
from psycopg import sql

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.errors import DashqueryError


def _client(no_cache: bool = False) -> Client:
    try:
        return Client(cache=not no_cache)
    except DashqueryError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("organization_id")
@click.argument("date_from")
@click.argument("date_to")
@click.option("--json", "as_json", is_flag=True, help="Print the full §4 result as JSON.")
@click.option("--no-cache", is_flag=True, help="Bypass Redis: compute from PostgreSQL.")
def metrics(
    organization_id: str, date_from: str, date_to: str, as_json: bool, no_cache: bool
) -> None:
    """Print the dashboard metrics of ORGANIZATION_ID from DATE_FROM to DATE_TO.

    Dates are YYYY-MM-DD business days (DASHQUERY_TIMEZONE), both included. Reads Redis
    first, then the hybrid query; exits 1 with a message naming any bad argument.
    """
    with _client(no_cache) as client:
        try:
            result = client.get_metrics(organization_id, date_from, date_to)
        except DashqueryError as exc:
            raise click.ClickException(str(exc)) from exc
    data = result.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(map(len, data))
    for key, value in data.items():
        if key != "freshness":
            click.echo(f"{key:<{width}}  {value}")
    for block, freshness in data["freshness"].items():
        click.echo(
            f"freshness.{block:<14} watermark={freshness['watermark']}"
            f" first_live_day={freshness['first_live_day']}"
            + (f" live: {freshness['live_reason']}" if freshness["live_reason"] else "")
        )


@click.command()
@click.option("--org", "organization_id", help="Only this organization (default: everything).")
def invalidate(organization_id: str | None) -> None:
    """Drop cached results: of one organization (--org), or all of them.

    O(1) either way: a generation counter is bumped, no key is scanned; superseded values
    expire with their TTL.
    """
    with _client() as client:
        try:
            if organization_id:
                client.invalidate_org(organization_id)
            else:
                client.invalidate_all()
        except DashqueryError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"invalidated {'organization ' + organization_id if organization_id else 'all'}")


@click.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--ids", "ids_only", is_flag=True, help="Print only the ids, one per line.")
def orgs(limit: int, ids_only: bool) -> None:
    """List organizations (id and name) from DASHQUERY_SOURCE_SCHEMA, by name."""
    settings = Settings.from_env()
    query = sql.SQL("select id, name from {} order by name limit %s").format(
        sql.Identifier(settings.source_schema, "organizations")
    )
    try:
        with psycopg.connect(settings.conninfo) as conn:
            rows = conn.execute(query, (limit,)).fetchall()
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot list organizations: {exc}") from exc
    for org_id, name in rows:
        click.echo(str(org_id) if ids_only else f"{org_id}  {name}")
