"""The hybrid statement's own time on the server, per range (issue 14: "the 730-day
statement <= 1.5 ms server-side").

Method: the statement ``Client.compute`` runs (the bytes its ``Computer`` rendered, with
``%(name)s`` placeholders) is prepared under a name of its own on one of the client's pool
connections, so the session settings are the read path's (jit off, random_page_cost), and
run as a **generic plan** (``plan_cache_mode = force_generic_plan``: what the pool's
prepared statement uses after its first executions) under ``EXPLAIN (ANALYZE, TIMING OFF,
SUMMARY ON)``. The figure is PostgreSQL's "Execution Time" (executor start to end, no
network, no parse/plan); TIMING OFF keeps the per-node clock calls out of it. The stack has
no pg_stat_statements (it needs shared_preload_libraries), hence EXPLAIN.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from rich.progress import Progress

from dashquery.client import Client
from dashquery.dev.bench_options import BenchRange
from dashquery.dev.bench_stats import summarize

_NAME = "dashquery_bench_statement"
_PLACEHOLDERS = {"organization_id": "$1", "date_from": "$2", "date_to": "$3"}
WARM_UP = 2  # runs per range before the measured ones (buffers, the first execution)


def server_text(rendered: bytes) -> str:
    """The psycopg-rendered statement as server SQL: ``%(name)s`` -> ``$n``, ``%%`` -> ``%``."""
    text = rendered.decode()
    for name, number in _PLACEHOLDERS.items():
        text = text.replace(f"%({name})s", number)
    if "%(" in text.replace("%%", ""):
        raise ValueError("the statement has a placeholder the benchmark does not know")
    return text.replace("%%", "%")


def measure_statement(
    client: Client,
    org: uuid.UUID,
    ranges: Sequence[BenchRange],
    samples: int,
    bar: Progress,
) -> dict[str, Any]:
    """EXPLAIN ANALYZE execution (and planning) ms of the hybrid statement per range."""
    task = bar.add_task("hybrid statement, server side", total=len(ranges) * samples)
    by_range: dict[str, Any] = {}
    with client.pool.connection() as conn:
        _, rendered = client.computer.statements(conn)
        # A str without parameters goes to the server as it is (no placeholder parsing).
        conn.execute(f"prepare {_NAME} (uuid, date, date) as " + server_text(rendered))
        try:
            conn.execute("set plan_cache_mode = force_generic_plan")
            for r in ranges:
                runs = [_explain(conn, org, r) for _ in range(WARM_UP + samples)][WARM_UP:]
                bar.advance(task, samples)
                by_range[r.label] = {
                    "execution_ms": summarize([e for e, _ in runs]),
                    "planning_ms": summarize([p for _, p in runs]),
                }
        finally:
            conn.execute("reset plan_cache_mode")
            conn.execute(sql.SQL("deallocate {}").format(sql.Identifier(_NAME)))
    return {
        "method": "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE of the read path's"
        " statement, generic plan (plan_cache_mode = force_generic_plan), on a pool"
        " connection; 'Execution Time' as PostgreSQL reports it",
        "organization": str(org),
        "samples": samples,
        "ranges": by_range,
    }


def _explain(conn: psycopg.Connection[Any], org: uuid.UUID, r: BenchRange) -> tuple[float, float]:
    # Literals, not parameters: EXPLAIN EXECUTE is a utility statement and takes none.
    query = sql.SQL(
        "explain (analyze, timing off, summary on, format json) execute {} ({}, {}, {})"
    ).format(
        sql.Identifier(_NAME),
        sql.Literal(str(org)),
        sql.Literal(r.date_from),
        sql.Literal(r.date_to),
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    plan = row[0][0]
    return float(plan["Execution Time"]), float(plan.get("Planning Time", 0.0))
