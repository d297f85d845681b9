"""How the capture scenario writes "without capture" (``bench_capture``), two ways (``MODES``
besides ``capture``), and the connections of each mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from dashquery.catalog import CHANGES_TABLE
from dashquery.config import Settings

Conn = psycopg.Connection[Any]
MODES = ("capture", "triggers_disabled", "replica")
BASELINES = ("replica", "triggers_disabled")
BLOCK = 25  # single-row transactions per mode before the next mode's turn
WITHOUT_CAPTURE = {
    "replica": "session_replication_role = replica for the session: no ordinary trigger"
    " fires, so the capture triggers are skipped, and so are the foreign-key checks (RI"
    " triggers): the ratio is an upper bound of the capture triggers' own cost",
    "triggers_disabled": "ALTER TABLE ... DISABLE TRIGGER on the table's dq_capture"
    " triggers while that mode's block runs (foreign-key checks kept, as with capture"
    " switched off): the ratio is the capture triggers' own cost",
}


def changes_count(conn: Conn, settings: Settings) -> int:
    query = sql.SQL("select count(*) from {}").format(
        sql.Identifier(settings.schema, CHANGES_TABLE)
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def mode_connections(settings: Settings) -> Iterator[dict[str, Conn]]:
    """One autocommit connection per mode; the replica one in replica role."""
    conns = {mode: psycopg.connect(settings.conninfo, autocommit=True) for mode in MODES}
    try:
        conns["replica"].execute("set session_replication_role = replica")
        yield conns
    finally:
        for conn in conns.values():
            conn.close()


@contextmanager
def capture_off(conn: Conn, src: sql.Identifier, table: str, mode: str) -> Iterator[None]:
    """In mode ``triggers_disabled``: every dq_capture trigger of the table (mark included) off."""
    if mode != "triggers_disabled":
        yield
        return
    relation = sql.SQL("{}.{}").format(src, sql.Identifier(table))
    query = "select tgname from pg_trigger where tgrelid = %s::regclass and tgname like %s"
    like = f"dq\\_capture\\_{table}\\_%"
    names = [sql.Identifier(n) for (n,) in conn.execute(query, (relation.as_string(conn), like))]

    def alter(action: str) -> None:
        actions = sql.SQL(", ").join(sql.SQL(action + " trigger {}").format(n) for n in names)
        conn.execute(sql.SQL("alter table {} {}").format(relation, actions))

    alter("disable")
    try:
        yield
    finally:
        alter("enable")


def ratio(slow: float, fast: float) -> float | None:
    return round(slow / fast, 3) if fast else None
