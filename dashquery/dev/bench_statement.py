"""The hybrid statement's own time on the server, per range (issue 14: "the 730-day
statement <= 1.5 ms server-side").

Method: the statement ``Client.compute`` runs (the bytes its ``Computer`` rendered, with
``%(name)s`` placeholders) is prepared under a name of its own on one of the client's pool
connections, so the session settings are the read path's (jit off, random_page_cost), and
executed as the pool's own prepared statement is: ``plan_cache_mode`` as the session has
it (the read path forces generic plans), so it runs the plan the pool's statement runs
(both counts are reported, beside the pool statement's own from
``pg_prepared_statements``). The ranges take turns (one sample of each in turn); each
sample alternates ``EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE`` (PostgreSQL's
"Execution Time": executor start to end, no network, no parse or plan; TIMING OFF keeps
the per-node clock calls out of it, row counting stays) with a plain ``EXECUTE`` timed by
the client (the statement, the round trip and the transfer of its one row, no result
building): the server figure and its bound from the other side. The stack has no
pg_stat_statements (it needs shared_preload_libraries), hence EXPLAIN.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from rich.progress import Progress

from dashquery.client import Client
from dashquery.dev.bench_options import BenchRange
from dashquery.dev.bench_stats import elapsed_ms, summarize
from dashquery.read.binding import native

_NAME = "dashquery_bench_statement"
WARM_UP = 2  # runs per range before the measured ones (buffers, the first execution)
# Executions before any measurement: the first plans the statement. Six, as under the default
# plan_cache_mode=auto, where the plan cache chooses after five (the read path forces generic).
SETTLE = 6
_PLANS = "select generic_plans, custom_plans from pg_prepared_statements where name = %s"


def server_text(rendered: bytes) -> str:
    """The statement as server SQL. The read path renders it with native ``$1..$3`` already
    (``read.binding.native``): sent as it is. A psycopg-rendered text (``%(name)s``, ``%%``)
    goes through the same ``native``."""
    if not re.search(rb"%\([a-z_]+\)s", rendered):
        return rendered.decode()
    return native(rendered).decode().replace("%%", "%")


def measure_statement(
    client: Client,
    org: uuid.UUID,
    ranges: Sequence[BenchRange],
    samples: int,
    bar: Progress,
) -> dict[str, Any]:
    """Server-side execution (and planning) ms of the hybrid statement per range, and the
    client-timed EXECUTE beside it (module doc)."""
    task = bar.add_task("hybrid statement, server side", total=len(ranges) * samples)
    by_range: dict[str, Any] = {}
    with client.pool.connection() as conn:
        _, rendered = client.computer.statements(conn)
        pool_plans = _pool_plans(conn)
        # A str without parameters goes to the server as it is (no placeholder parsing).
        conn.execute(f"prepare {_NAME} (uuid, date, date) as " + server_text(rendered))
        try:
            for _ in range(SETTLE):
                conn.execute(_statement("", org, ranges[0]))
            before = conn.execute(_PLANS, (_NAME,)).fetchone()
            for r in ranges:
                for _ in range(WARM_UP):
                    _explain(conn, org, r)
            # Round robin over the ranges, not one range after another: a shared machine's
            # slow minute then lands on every range alike, and their ratios stay fair.
            explained: dict[str, list[tuple[float, float]]] = {r.label: [] for r in ranges}
            executed: dict[str, list[float]] = {r.label: [] for r in ranges}
            for _ in range(samples):
                for r in ranges:
                    explained[r.label].append(_explain(conn, org, r))
                    started = time.perf_counter()
                    conn.execute(_statement("", org, r)).fetchall()
                    executed[r.label].append(elapsed_ms(started))
                    bar.advance(task)
            for r in ranges:
                by_range[r.label] = {
                    "execution_ms": summarize([e for e, _ in explained[r.label]]),
                    "planning_ms": summarize([p for _, p in explained[r.label]]),
                    "client_execute_ms": summarize(executed[r.label]),
                }
            after = conn.execute(_PLANS, (_NAME,)).fetchone()
        finally:
            conn.execute(sql.SQL("deallocate {}").format(sql.Identifier(_NAME)))
    assert before is not None and after is not None
    return {
        "method": "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE of the read path's"
        " statement prepared on a pool connection, the plan its session's plan cache runs"
        f" after {SETTLE} executions (read sessions force generic plans);"
        " 'Execution Time' as PostgreSQL reports it",
        "organization": str(org),
        "samples": samples,
        "plans_while_measured": {
            "generic": after[0] - before[0],
            "custom": after[1] - before[1],
        },
        "pool_statement_plans": pool_plans,
        "ranges": by_range,
    }


def _pool_plans(conn: psycopg.Connection[Any]) -> dict[str, int] | None:
    """Generic and custom plans of the pool connection's own prepared hybrid statement:
    psycopg's (``_pg3_*``), the longest by far (the metrics statement unions every block)."""
    row = conn.execute(
        "select generic_plans, custom_plans from pg_prepared_statements"
        " where name like '\\_pg3\\_%' order by length(statement) desc limit 1"
    ).fetchone()
    return None if row is None else {"generic": row[0], "custom": row[1]}


def _statement(prefix: str, org: uuid.UUID, r: BenchRange) -> sql.Composed:
    # Literals, not parameters: EXPLAIN and EXECUTE are utility statements and take none.
    return sql.SQL(prefix + "execute {} ({}, {}, {})").format(
        sql.Identifier(_NAME),
        sql.Literal(str(org)),
        sql.Literal(r.date_from),
        sql.Literal(r.date_to),
    )


def _explain(conn: psycopg.Connection[Any], org: uuid.UUID, r: BenchRange) -> tuple[float, float]:
    prefix = "explain (analyze, timing off, summary on, format json) "
    row = conn.execute(_statement(prefix, org, r)).fetchone()
    assert row is not None
    plan = row[0][0]
    return float(plan["Execution Time"]), float(plan.get("Planning Time", 0.0))
