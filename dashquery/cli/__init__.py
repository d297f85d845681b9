"""The ``dashquery`` command line; each command group lives in its own module.

Every command fails the same way: one line on stderr naming the problem and a non-zero
exit, never a traceback. ``DashqueryGroup`` turns whatever a command lets through (a
``DashqueryError``, a psycopg or redis error, any other exception) into that line;
``--debug`` (or ``DASHQUERY_DEBUG=1``) lets unexpected errors through with their traceback.
"""

from __future__ import annotations

from typing import Any

import click
import psycopg
import redis

from dashquery.cli.bench import bench
from dashquery.cli.ops import refresh, status, warm_command
from dashquery.cli.read import invalidate, metrics, orgs
from dashquery.cli.seed import seed
from dashquery.cli.stack import stack
from dashquery.errors import DashqueryError
from dashquery.ops.pg_errors import one_line, pg_error

DEBUG_HINT = "rerun with --debug (or DASHQUERY_DEBUG=1) for the traceback"


class DashqueryGroup(click.Group):
    """A click group whose commands never end in a traceback (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise  # click prints the usage and the hint itself
        except click.ClickException as exc:
            exc.message = one_line(exc.message)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise  # a command's own exit status, or ^C: click handles both
        except DashqueryError as exc:
            raise click.ClickException(one_line(exc)) from exc
        except (psycopg.Error, redis.RedisError) as exc:
            # a server error a code path did not translate: still the cause, on one line
            raise click.ClickException(one_line(pg_error(exc, "complete the command"))) from exc
        except Exception as exc:
            if ctx.find_root().params.get("debug"):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {one_line(exc)[:300]} ({DEBUG_HINT})"
            ) from exc


@click.group(
    cls=DashqueryGroup,
    context_settings={"auto_envvar_prefix": "DASHQUERY", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="DASHQUERY_DEBUG",
    help="Show the traceback of an unexpected error [DASHQUERY_DEBUG].",
)
def cli(debug: bool) -> None:
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
