"""The capture scenario's second single-row pass, with durable commits (issue 13 item 5).

The bench stack runs with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off (fast
to generate and build), so a single-row transaction there costs CPU only, ~0.15-0.3 ms, and
the capture trigger's fixed cost is a large share of it. An application's server commits
durably (PostgreSQL's defaults: all three on): every transaction waits for its WAL flush,
to which the trigger adds a few bytes, not a flush. So the single-row overhead is measured
both ways: as the server is configured, and again with the three settings on, when the
bench may change them (its own stack, ``ALTER SYSTEM`` + ``pg_reload_conf()``, reset
afterwards). Neither figure replaces the other: the report carries both, with the settings
each ran under.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]
T = TypeVar("T")
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
_APPLIED_WITHIN_SECONDS = 10.0


def commit_settings(conn: Conn) -> dict[str, str]:
    """The session's values of the settings a commit's cost depends on."""
    shown = {}
    for name in DURABLE:
        row = conn.execute(sql.SQL("show {}").format(sql.Identifier(name))).fetchone()
        shown[name] = str(row[0]) if row else ""
    return shown


def _apply(admin: Conn, values: dict[str, str] | None) -> None:
    """ALTER SYSTEM SET the settings (RESET them, ``values`` None) and reload."""
    for name in DURABLE:
        if values is None:
            admin.execute(sql.SQL("alter system reset {}").format(sql.Identifier(name)))
        else:
            statement = sql.SQL("alter system set {} = {}")
            admin.execute(statement.format(sql.Identifier(name), sql.Literal(values[name])))
    admin.execute("select pg_reload_conf()")


def _wait_for(sessions: list[Conn], wanted: dict[str, str]) -> None:
    """Until every session shows ``wanted``: a backend applies a reload at its next command,
    not at once, and a pass must not start (nor the next one after it) half applied."""
    deadline = time.monotonic() + _APPLIED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if all(commit_settings(conn) == wanted for conn in sessions):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the sessions did not take {wanted} within {_APPLIED_WITHIN_SECONDS} s")


@contextmanager
def durable_commits(admin: Conn, sessions: list[Conn]) -> Iterator[None]:
    """The server with durable commits for the duration, its own settings afterwards."""
    own = commit_settings(admin)
    try:
        _apply(admin, DURABLE)
        _wait_for(sessions, DURABLE)
        yield
    finally:
        _apply(admin, None)
        _wait_for(sessions, own)


def durable_pass(
    admin: Conn, sessions: list[Conn], *, allowed: bool, measure: Callable[[], T]
) -> tuple[dict[str, Any], T | None]:
    """``measure()`` again with durable commits: the report entry and its result (None when
    skipped: not the bench's server to change, or already durable)."""
    if commit_settings(admin) == DURABLE:
        return {"skipped": "the server already commits durably (the pass above)"}, None
    if not allowed:
        return {"skipped": "--existing: the server's settings are not the benchmark's"}, None
    try:
        with durable_commits(admin, sessions):
            settings = commit_settings(sessions[0])
            result = measure()
    except psycopg.errors.InsufficientPrivilege as exc:
        return {"skipped": f"ALTER SYSTEM refused: {exc}"}, None
    return {"commit_settings": settings}, result
