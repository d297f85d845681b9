"""Whether every materialized relation holds exactly what its daily view computes now: the
check after a refresh that nothing was left stale (a change the capture never recorded
survives an incremental refresh, which recomputes only recorded groups)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from dashquery.catalog import CURRENT_STATE, CUSTOMER_DAYS, DAILY_BLOCKS
from dashquery.dev.bench_capture_refresh import ALL_TAGS

Conn = psycopg.Connection[Any]

# What refreshes every materialized relation: each cadence tag.
REFRESH_ALL = ["run", "--select", *ALL_TAGS.split()]


def view_columns(conn: Conn, schema: str, view: str) -> list[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s"
        " and table_name = %s order by ordinal_position",
        (schema, view),
    ).fetchall()
    assert rows, f"no view {schema}.{view}"
    return [r[0] for r in rows]


def materialized_differences(conn: Conn, schema: str) -> dict[str, int]:
    """Rows in one of (materialized relation, its daily view) but not the other, per relation."""
    pairs = [(b.materialized_view, b.view) for b in DAILY_BLOCKS]
    pairs.append((CURRENT_STATE.materialized_view, CURRENT_STATE.view))
    found: dict[str, int] = {}
    for relation, view in pairs:
        cols = sql.SQL(", ").join(map(sql.Identifier, view_columns(conn, schema, view)))
        found[relation] = _symmetric(
            conn,
            sql.SQL("select {} from {}").format(cols, sql.Identifier(schema, relation)),
            sql.SQL("select {} from {}").format(cols, sql.Identifier(schema, view)),
        )
    days = sql.SQL(
        "select organization_id, customer_id, range_agg(daterange(business_day, business_day,"
        " '[]')) as order_days from {} group by 1, 2"
    ).format(sql.Identifier(schema, CUSTOMER_DAYS.view))
    found[CUSTOMER_DAYS.materialized_view] = _symmetric(
        conn,
        sql.SQL("select organization_id, customer_id, order_days from {}").format(
            sql.Identifier(schema, CUSTOMER_DAYS.materialized_view)
        ),
        days,
    )
    return {k: v for k, v in found.items() if v}


def _symmetric(conn: Conn, left: sql.Composable, right: sql.Composable) -> int:
    query = sql.SQL(
        "select (select count(*) from ({l} except all {r}) a)"
        " + (select count(*) from ({r} except all {l}) b)"
    ).format(l=left, r=right)
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])
