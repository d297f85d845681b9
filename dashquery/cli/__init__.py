"""The ``dashquery`` command line; each command lives in a module of this package, imported
only when that command runs (``LAZY_COMMANDS``): cron's ``dashquery refresh --queued`` never
imports the benchmark, the generator or matplotlib.

Every command fails the same way: one line on stderr naming the problem and a non-zero
exit, never a traceback. ``DashqueryGroup`` turns whatever a command lets through (a
``DashqueryError``, a psycopg or redis error, any other exception) into that line;
``--debug`` (or ``DASHQUERY_DEBUG=1``) lets unexpected errors through with their traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import psycopg
import redis

from dashquery.errors import DashqueryError
from dashquery.ops.pg_errors import one_line, pg_error

DEBUG_HINT = "rerun with --debug (or DASHQUERY_DEBUG=1) for the traceback"

# command name -> "module:attribute" in this package, imported on first use.
LAZY_COMMANDS: dict[str, str] = {
    "bench": "bench:bench",
    "invalidate": "read:invalidate",
    "listen": "listen:listen",
    "metrics": "read:metrics",
    "orgs": "read:orgs",
    "refresh": "ops:refresh",
    "seed": "seed:seed",
    "stack": "stack:stack",
    "status": "ops:status",
    "warm": "ops:warm_command",
}


class DashqueryGroup(click.Group):
    """A click group that imports a command only when it runs, and whose commands never
    end in a traceback (see the module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{LAZY_COMMANDS[cmd_name]} is not a click command")
        return command

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


def main() -> None:
    cli()
