"""``dashquery bench --scenario capture``: what change capture costs writers (issue 13 item 5).

Single-row INSERT and UPDATE transactions on orders and order_items, and a bulk
``INSERT ... SELECT`` of ``bulk_rows`` rows into each, WITH the capture triggers and WITHOUT
them, in the same run on the same database, two ways (``MODES``, ``bench_capture_modes``):

- ``replica``: a session with ``session_replication_role = replica``. PostgreSQL then fires
  no ordinary trigger, which also skips the foreign-key checks (RI triggers), so the ratio
  against it is an upper bound of what the capture triggers alone cost;
- ``triggers_disabled``: ``ALTER TABLE ... DISABLE TRIGGER dq_capture_<table>_*`` for the
  block of transactions (enabled again right after): the foreign-key checks still run, as
  in a deployment with capture switched off, so this ratio is the triggers' own cost.

The modes alternate in blocks of ``BLOCK`` transactions in shuffled order, so drift in the
machine's load weighs on all alike. The single-row pass runs as the server commits, then,
on a server the benchmark may reconfigure, again with durable commits (``bench_durable``).

Every single-row write made without capture is then undone with capture on (``_undo``: an
inserted row deleted, an update inverted), so the change table records its groups whatever
columns each block watches, and every later read and refresh stays exact. (A no-op UPDATE
would not do: a block whose mapping names ``on_update_of`` columns rightly records nothing
for it, and its materialized rows stayed stale.) The bulk rows are deleted again after each
load (``_bulk``). The refresh half: ``bench_capture_refresh``.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from dashquery.config import Settings
from dashquery.dev.bench_capture_modes import (
    BASELINES,
    BLOCK,
    MODES,
    WITHOUT_CAPTURE,
    capture_off,
    changes_count,
    mode_connections,
    ratio,
)
from dashquery.dev.bench_durable import commit_settings, durable_pass
from dashquery.dev.bench_stats import elapsed_ms, summarize

Conn = psycopg.Connection[Any]


class _Picks:
    """Existing rows to write against, sampled once (seeded)."""

    def __init__(self, conn: Conn, settings: Settings, rng: random.Random, n: int) -> None:
        src = sql.Identifier(settings.source_schema)
        q = sql.SQL(
            "select o.id, o.organization_id, o.customer_id, o.created_at,"
            " (select p.id from {src}.products p where p.organization_id = o.organization_id"
            "  order by p.id limit 1)"
            " from {src}.orders o tablesample bernoulli (%s) repeatable (%s)"
            " where o.deleted_at is null limit %s"
        ).format(src=src)
        total = conn.execute(sql.SQL("select count(*) from {}.orders").format(src)).fetchone()
        percent = min(100.0, 100.0 * 3 * n / max(1, total[0]))  # type: ignore[index]
        self.orders = conn.execute(q, (percent, rng.randrange(10**6), n)).fetchall()
        q_items = sql.SQL(
            "select id from {src}.order_items tablesample bernoulli (%s) repeatable (%s) limit %s"
        ).format(src=src)
        self.items = [r[0] for r in conn.execute(q_items, (percent, rng.randrange(10**6), n))]
        rng.shuffle(self.orders)
        rng.shuffle(self.items)


def progress_steps(single_rows: int, bulk_repeats: int, *, durable: bool) -> int:
    """How many times ``measure_write_overhead`` advances its progress bar: once per block of
    single-row transactions of a mode (per pass), once per bulk load."""
    blocks = -(-single_rows // BLOCK)
    single = len(_SINGLE_SQL) * len(MODES) * blocks * (2 if durable else 1)
    return single + len(_BULK_SQL) * len(MODES) * bulk_repeats


def measure_write_overhead(
    settings: Settings,
    rng: random.Random,
    *,
    single_rows: int,
    bulk_rows: int,
    bulk_repeats: int,
    durable: bool = False,
    advance: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Single-row and bulk writes with and without capture; see the module doc. ``durable``:
    the single-row pass again with durable commits (``bench_durable``)."""
    src = sql.Identifier(settings.source_schema)
    with (
        psycopg.connect(settings.conninfo, autocommit=True) as admin,
        mode_connections(settings) as conns,
    ):
        picks = _Picks(admin, settings, rng, len(MODES) * single_rows + 10)
        settings_shown = commit_settings(admin)
        single, written = _single_row(conns, src, picks, rng, single_rows, advance)
        again, durable_run = durable_pass(
            admin,
            list(conns.values()),
            allowed=durable,
            measure=lambda: _single_row(conns, src, picks, rng, single_rows, advance),
        )
        for key, ids in (durable_run[1] if durable_run else {}).items():
            written[key] += ids
        _undo(conns["capture"], src, written)
        bulk = _bulk(admin, conns, settings, rng, bulk_rows, bulk_repeats, advance)
    return {
        "without_capture": WITHOUT_CAPTURE,
        "commit_settings": settings_shown,
        "single_row": single,
        "single_row_durable": again | ({"single_row": durable_run[0]} if durable_run else {}),
        "bulk": bulk,
    }


_SINGLE_SQL = {
    ("orders", "insert"): "insert into {src}.orders (id, organization_id, customer_id, status,"
    " total_cents, created_at, updated_at) values (%s, %s, %s, 'confirmed', %s, %s, now())",
    ("orders", "update"): "update {src}.orders set total_cents = total_cents + 1,"
    " updated_at = now() where id = %s",
    ("order_items", "insert"): "insert into {src}.order_items (id, organization_id, order_id,"
    " product_id, quantity, unit_price_cents, line_total_cents, created_at)"
    " values (%s, %s, %s, %s, 1, %s, %s, %s)",
    ("order_items", "update"): "update {src}.order_items set quantity = quantity + 1,"
    " line_total_cents = line_total_cents + unit_price_cents where id = %s",
}


# The inverse of each statement above, run with capture on for every write made without it.
_UNDO_SQL = {
    ("orders", "insert"): "delete from {src}.orders where id = %s",
    ("orders", "update"): "update {src}.orders set total_cents = total_cents - 1 where id = %s",
    ("order_items", "insert"): "delete from {src}.order_items where id = %s",
    ("order_items", "update"): "update {src}.order_items set quantity = quantity - 1,"
    " line_total_cents = line_total_cents - unit_price_cents where id = %s",
}


def _single_row(
    conns: dict[str, Conn],
    src: sql.Identifier,
    picks: _Picks,
    rng: random.Random,
    n: int,
    advance: Callable[[], None],
) -> tuple[dict[str, Any], dict[str, list[uuid.UUID]]]:
    """Each (table, op): n transactions per mode, the modes alternating (order shuffled).
    Also returns, per (table, op), the rows written without capture, once per write."""
    written: dict[tuple[str, str], list[uuid.UUID]] = {key: [] for key in _SINGLE_SQL}
    report: dict[str, Any] = {}
    now = dt.datetime.now(dt.UTC)
    for (table, op), text in _SINGLE_SQL.items():
        statement = sql.SQL(text).format(src=src)  # type: ignore[arg-type]
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        row_index = 0
        for _block in range(-(-n // BLOCK)):
            order = list(MODES)
            rng.shuffle(order)
            for mode in order:
                size = min(BLOCK, n - len(samples[mode]))
                with capture_off(conns["capture"], src, table, mode):
                    for _ in range(size):
                        params = _params(table, op, picks, row_index, rng, now)
                        row_index += 1
                        started = time.perf_counter()
                        conns[mode].execute(statement, params)
                        samples[mode].append(elapsed_ms(started))
                        if mode != "capture":
                            written[table, op].append(params[0])
                advance()
        stats = {mode: summarize(values) for mode, values in samples.items()}
        report[f"{table}_{op}"] = {
            "transactions_per_mode": n,
            "ms": stats,
            "ratio": {
                f"vs_{base}": {
                    q: ratio(stats["capture"][q], stats[base][q]) for q in ("p50", "p95")
                }
                for base in BASELINES
            },
        }
    return report, written


def _params(
    table: str, op: str, picks: _Picks, index: int, rng: random.Random, now: dt.datetime
) -> tuple[Any, ...]:
    if op == "update" and table == "orders":
        return (picks.orders[index % len(picks.orders)][0],)
    if op == "update":
        return (picks.items[index % len(picks.items)],)
    if table == "orders":
        _, org, customer, _, _ = picks.orders[index % len(picks.orders)]
        created = now - dt.timedelta(seconds=rng.randrange(730 * 86400))
        return (uuid.uuid4(), org, customer, rng.randrange(1000, 10**6), created)
    order_id, org, _, created, product = picks.orders[index % len(picks.orders)]
    price = rng.randrange(100, 10**5)
    return (uuid.uuid4(), org, order_id, product, price, price, created)


def _undo(conn: Conn, src: sql.Identifier, written: dict[tuple[str, str], list[uuid.UUID]]) -> None:
    """Undo, with capture on, each write made without it (``_UNDO_SQL``, once per write)."""
    for key, ids in written.items():
        statement = sql.SQL(_UNDO_SQL[key]).format(src=src)  # type: ignore[arg-type]
        with conn.transaction():
            for row_id in ids:
                conn.execute(statement, (row_id,))


# Bulk rows: copies of existing rows with new ids (same organizations, days and shapes), so
# they spread over the history like the application's own rows.
_BULK_SQL = {
    "orders": "insert into {src}.orders (id, organization_id, customer_id, status, total_cents,"
    " created_at, updated_at) select gen_random_uuid(), organization_id, customer_id, status,"
    " total_cents, created_at, updated_at from {src}.orders where deleted_at is null"
    " order by id limit %s returning id",
    "order_items": "insert into {src}.order_items (id, organization_id, order_id, product_id,"
    " quantity, unit_price_cents, line_total_cents, created_at) select gen_random_uuid(),"
    " organization_id, order_id, product_id, quantity, unit_price_cents, line_total_cents,"
    " created_at from {src}.order_items order by id limit %s returning id",
}


def _bulk(
    admin: Conn,
    conns: dict[str, Conn],
    settings: Settings,
    rng: random.Random,
    rows: int,
    repeats: int,
    advance: Callable[[], None],
) -> dict[str, Any]:
    """Per table: ``repeats`` loads per mode (alternating), each deleted again afterwards."""
    src = sql.Identifier(settings.source_schema)
    report: dict[str, Any] = {}
    for table, text in _BULK_SQL.items():
        statement = sql.SQL(text).format(src=src)  # type: ignore[arg-type]
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        changes_after: list[int] = []
        for _repeat in range(repeats):
            order = list(MODES)
            rng.shuffle(order)
            for mode in order:
                before = changes_count(admin, settings)
                with capture_off(conns["capture"], src, table, mode):
                    started = time.perf_counter()
                    ids = [r[0] for r in conns[mode].execute(statement, (rows,))]
                    seconds[mode].append(round(time.perf_counter() - started, 3))
                if mode == "capture":
                    changes_after.append(changes_count(admin, settings) - before)
                # Gone again, without capture and without the foreign-key checks (a
                # DELETE checks jobs.order_id per row, which has no full index): safe, as
                # nothing references these new rows. A captured load's groups are already
                # recorded (the refresh recomputes them from what is left); an uncaptured
                # load and its delete cancel out.
                conns["replica"].execute(
                    sql.SQL("delete from {}.{} where id = any(%s)").format(
                        src, sql.Identifier(table)
                    ),
                    (ids,),
                )
                advance()
        best = {mode: min(values) for mode, values in seconds.items()}
        report[table] = {
            "rows": rows,
            "method": "INSERT ... SELECT (copies of existing rows, new ids), one transaction",
            "seconds": seconds,
            "best_seconds": best,
            "ratio_of_best": {
                f"vs_{base}": ratio(best["capture"], best[base]) for base in BASELINES
            },
            "change_rows_added": changes_after,
        }
    return report
