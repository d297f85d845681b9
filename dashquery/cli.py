"""The ``dashquery`` command line; each command group lives in its own module."""

from __future__ import annotations

import click

from dashquery.cli_bench import bench
from dashquery.cli_ops import refresh, status, warm_command
from dashquery.cli_read import invalidate, metrics, orgs
from dashquery.cli_seed import seed
from dashquery.cli_stack import stack


@click.group(
    context_settings={"auto_envvar_prefix": "DASHQUERY", "help_option_names": ["-h", "--help"]}
)
def cli() -> None:
    """Fast, exact dashboard metrics on PostgreSQL with a Redis cache.

    Configuration comes from PG* and DASHQUERY_* environment variables (see README).
    """


cli.add_command(stack)
cli.add_command(seed)
cli.add_command(metrics)
cli.add_command(invalidate)
cli.add_command(orgs)
cli.add_command(status)
cli.add_command(warm_command)
cli.add_command(refresh)
cli.add_command(bench)


def main() -> None:
    cli()
