"""``dashquery stack``: a throwaway local PostgreSQL 15 + Redis (see dashquery.dev.stack)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from dashquery.dev.stack import LocalStack, StackError

_DIR = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".stack"),
    show_default=True,
    help="Folder holding the servers' data, logs and sockets.",
)


def _exports(env: dict[str, str]) -> None:
    for key, value in env.items():
        click.echo(f"export {key}={shlex.quote(value)}")


def _stack(root: Path) -> LocalStack:
    return LocalStack(root=root, progress=lambda msg: click.echo(msg, err=True))


@click.group()
def stack() -> None:
    """Run a local PostgreSQL 15 and Redis on 127.0.0.1 for development.

    Fast and disposable (fsync off); nothing is shared with a system server. Typical use:

    \b
        eval "$(dashquery stack up)"
        dashquery stack down
    """


@stack.command()
@_DIR
def up(root: Path) -> None:
    """Start the stack (or reuse the one running from DIR) and print `export` lines.

    The export lines (PGHOST, PGPORT, PGUSER, PGDATABASE, DASHQUERY_REDIS_URL) go to stdout,
    progress to stderr, so `eval "$(dashquery stack up)"` configures the current shell.
    """
    try:
        _exports(_stack(root).start())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command()
@_DIR
@click.option("--destroy", is_flag=True, help="Also delete DIR and every database in it.")
def down(root: Path, destroy: bool) -> None:
    """Stop the stack's servers (safe when they are not running)."""
    local = _stack(root)
    try:
        if destroy:
            local.destroy()
        else:
            local.stop()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command()
@_DIR
def env(root: Path) -> None:
    """Print the `export` lines of the stack in DIR without starting anything."""
    try:
        _exports(_stack(root).env())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
