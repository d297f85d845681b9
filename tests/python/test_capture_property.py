"""Issue 13 item 7: random changes of every application table are exact before any refresh,
and a refresh leaves the materialized relations equal to their daily views, change table
consumed.

A seeded generator makes ``SEQUENCES`` sequences of ``STEPS`` steps; each step is one
transaction of one kind: insert, update (moving a row to another day, changing status or
amounts), delete, soft delete or undelete, on orders, order_items (also re-pointed to another
order), products (capacity changed), opportunities, jobs (also deleted with their time
entries), job_time_entries, warranty_claims and customers. After every step ``get_metrics``
(cache off) equals ``naive_metrics`` over several ranges, most of them wholly before the
split (materialized data, so only the capture triggers and the change-aware read make them
exact). After each sequence: ``dbt run --select tag:15min tag:5min tag:hourly``, the same
check for every organization, every materialized row equal to its daily view's row (EXCEPT
ALL both ways), and no change row left for the refreshed daily views.

The seed is random per run (``DASHQUERY_PROPERTY_SEED`` fixes it) and is in every failure
message. Which refresh strategy ran is printed (``-s``) and recorded as a user property.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery import Client
from dashquery.catalog import (
    CHANGES_TABLE,
    METRIC_KEYS,
)
from dashquery.dev.naive import naive_metrics
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import PROJECT_DIR, run_dbt
from tests.python.helpers import Dashboard, build_dashboard, business_today
from tests.python.materialized_support import REFRESH_ALL, materialized_differences

Conn = psycopg.Connection[Any]
SEQUENCES = 3
STEPS = 15
BASE_SEED = int(os.environ.get("DASHQUERY_PROPERTY_SEED") or random.randrange(10**6))


@pytest.fixture(scope="module")
def dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    return build_dashboard(stack, redis_url, seed=71, orgs=2)


@pytest.fixture(scope="module")
def conn(dashboard: Dashboard) -> Iterator[Conn]:
    with dashboard.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def client(dashboard: Dashboard) -> Iterator[Client]:
    with Client(settings=dashboard.settings, cache=False) as c:
        yield c


class World:
    """Random writes against one database; ``rng`` is the sequence's own generator."""

    def __init__(self, conn: Conn, dashboard: Dashboard, rng: random.Random) -> None:
        self.conn, self.rng = conn, rng
        self.settings = dashboard.settings
        self.src = sql.Identifier(dashboard.settings.source_schema)
        self.orgs = [o for o in dashboard.organization_ids if o != dashboard.empty_organization_id]
        self.today = business_today(dashboard.settings)

    # -- helpers -----------------------------------------------------------------------
    def q(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.SQL(text).format(src=self.src), params)
        return cur.fetchall() if cur.description else []

    def pick(self, table: str, org: uuid.UUID, where: str = "true") -> Any:
        """A random row's id (``t`` names the table in ``where``), or None."""
        rows = self.q(
            f"select t.id from {{src}}.{table} as t where t.organization_id = %s and {where}"
            " order by md5(t.id::text || %s) limit 1",
            org, str(self.rng.random()),
        )  # fmt: skip
        return rows[0][0] if rows else None

    def when(self) -> dt.datetime:
        """A moment in the last ~800 days, mostly before the split (back-dated)."""
        days = self.rng.choice([0, 1, 3, 40, 200, 400, 700, self.rng.randrange(800)])
        seconds = self.rng.randrange(86400)
        return dt.datetime.now(dt.UTC) - dt.timedelta(days=days, seconds=seconds)

    # -- the steps: each returns a description (for failure messages) --------------------
    def order_insert(self, org: uuid.UUID) -> str:
        customer = self.pick("customers", org)
        product = self.pick("products", org)
        status = self.rng.choice(["confirmed", "delivered", "cancelled", "draft", "shipped"])
        at, oid = self.when(), uuid.uuid4()
        self.q(
            "insert into {src}.orders values (%s, %s, %s, %s, %s, %s, %s, null)",
            oid, org, customer, status, self.rng.randrange(100, 10**6), at, at,
        )  # fmt: skip
        self.q(
            "insert into {src}.order_items values (%s, %s, %s, %s, %s, 700, %s, %s)",
            uuid.uuid4(), org, oid, product, 3, 2100, at,
        )  # fmt: skip
        return f"order {oid} inserted at {at}"

    def order_update(self, org: uuid.UUID) -> str:
        oid = self.pick("orders", org)
        kind = self.rng.choice(["move", "status", "total", "customer"])
        if kind == "move":
            self.q("update {src}.orders set created_at = %s where id = %s", self.when(), oid)
        elif kind == "customer":
            # Only the customer changes: unique_customers' days (its own capture columns).
            customer = self.pick("customers", org)
            self.q("update {src}.orders set customer_id = %s where id = %s", customer, oid)
        elif kind == "status":
            status = self.rng.choice(["delivered", "cancelled", "picking", "confirmed"])
            self.q("update {src}.orders set status = %s where id = %s", status, oid)
        else:
            self.q("update {src}.orders set total_cents = total_cents * 2 + 1 where id = %s", oid)
        return f"order {oid} {kind}"

    def order_soft_delete(self, org: uuid.UUID) -> str:
        deleted = self.rng.random() < 0.5
        oid = self.pick("orders", org, "deleted_at is not null" if deleted else "true")
        if deleted and oid:
            self.q("update {src}.orders set deleted_at = null where id = %s", oid)
            return f"order {oid} undeleted"
        oid = oid or self.pick("orders", org)
        self.q("update {src}.orders set deleted_at = now() where id = %s", oid)
        return f"order {oid} soft-deleted"

    def order_delete(self, org: uuid.UUID) -> str:
        oid = self.pick(
            "orders", org, "not exists (select from {src}.jobs j where j.order_id = t.id)"
        )
        with self.conn.transaction():
            self.q("delete from {src}.order_items where order_id = %s", oid)
            self.q("delete from {src}.orders where id = %s", oid)
        return f"order {oid} deleted with its items"

    def item_change(self, org: uuid.UUID) -> str:
        # Lines of orders with completed jobs matter most (energy): prefer them.
        item = self.pick(
            "order_items", org,
            "order_id in (select order_id from {src}.jobs where status = 'completed')",
        ) or self.pick("order_items", org)  # fmt: skip
        kind = self.rng.choice(["repoint", "quantity", "delete", "insert"])
        if kind == "repoint":
            target = self.pick("orders", org, "id in (select order_id from {src}.jobs)")
            self.q("update {src}.order_items set order_id = %s where id = %s", target, item)
        elif kind == "quantity":
            self.q(
                "update {src}.order_items set quantity = quantity + %s where id = %s",
                self.rng.randrange(1, 9), item,
            )  # fmt: skip
        elif kind == "delete":
            self.q("delete from {src}.order_items where id = %s", item)
        else:
            order = self.pick("orders", org, "id in (select order_id from {src}.jobs)")
            product = self.pick("products", org)
            self.q(
                "insert into {src}.order_items select %s, organization_id, id, %s, 5, 100,"
                " 500, created_at from {src}.orders where id = %s",
                uuid.uuid4(), product, order,
            )  # fmt: skip
        return f"order item {item} {kind}"

    def product_capacity(self, org: uuid.UUID) -> str:
        product = self.pick(
            "products", org, "id in (select product_id from {src}.order_items)"
        ) or self.pick("products", org)  # fmt: skip
        value = self.rng.choice(["7.5", "13.5", "0", "junk", None])
        spec = {} if value is None else {"capacity_kwh": value}
        self.q(
            "update {src}.products set specifications = specifications - 'capacity_kwh'"
            " || %s::jsonb where id = %s",
            json.dumps(spec), product,
        )  # fmt: skip
        return f"product {product} capacity {value!r}"

    def opportunity_change(self, org: uuid.UUID) -> str:
        oid = self.pick("opportunities", org)
        kind = self.rng.choice(["won", "lost", "move", "soft_delete", "undelete", "insert"])
        if kind in ("won", "lost"):
            self.q(
                "update {src}.opportunities set stage = %s, closed_at = %s where id = %s",
                kind, self.when(), oid,
            )  # fmt: skip
        elif kind == "move":
            self.q("update {src}.opportunities set created_at = %s where id = %s", self.when(), oid)
        elif kind == "soft_delete":
            self.q("update {src}.opportunities set deleted_at = now() where id = %s", oid)
        elif kind == "undelete":
            oid = self.pick("opportunities", org, "deleted_at is not null") or oid
            self.q("update {src}.opportunities set deleted_at = null where id = %s", oid)
        else:
            at, oid = self.when(), uuid.uuid4()
            self.q(
                "insert into {src}.opportunities values (%s, %s, %s, 'proposal', 55000, 40,"
                " null, null, %s, %s, null)",
                oid, org, self.pick("customers", org), at, at,
            )  # fmt: skip
        return f"opportunity {oid} {kind}"

    def job_change(self, org: uuid.UUID) -> str:
        job = self.pick(
            "jobs", org, "exists (select from {src}.job_time_entries e where e.job_id = t.id)"
        )
        job = job or self.pick("jobs", org)
        kinds = ["reschedule", "complete", "reopen", "reorder", "hours", "soft_delete", "undelete"]
        kind = self.rng.choice([*kinds, "delete"])
        if kind == "reschedule":
            self.q("update {src}.jobs set scheduled_at = %s where id = %s", self.when(), job)
        elif kind == "reopen":
            # Only the status leaves 'completed' (completed_at stays): its energy day changes.
            job = self.pick("jobs", org, "status = 'completed' and order_id is not null") or job
            self.q("update {src}.jobs set status = 'in_progress' where id = %s", job)
        elif kind == "reorder":
            # Only order_id: the completed job's energy moves to another order's lines.
            job = self.pick("jobs", org, "status = 'completed'") or job
            order = self.pick("orders", org)
            self.q("update {src}.jobs set order_id = %s where id = %s", order, job)
        elif kind == "hours":
            self.q("update {src}.jobs set estimated_hours = estimated_hours + 1 where id = %s", job)
        elif kind == "complete":
            self.q(
                "update {src}.jobs set status = 'completed', completed_at = %s where id = %s",
                self.when(), job,
            )  # fmt: skip
        elif kind == "soft_delete":
            self.q("update {src}.jobs set deleted_at = now() where id = %s", job)
        elif kind == "undelete":
            job = self.pick("jobs", org, "deleted_at is not null") or job
            self.q("update {src}.jobs set deleted_at = null where id = %s", job)
        else:
            with self.conn.transaction():
                self.q("delete from {src}.job_time_entries where job_id = %s", job)
                self.q("delete from {src}.jobs where id = %s", job)
        return f"job {job} {kind}"

    def time_entry_change(self, org: uuid.UUID) -> str:
        entry = self.pick("job_time_entries", org)
        kind = self.rng.choice(["move", "hours", "delete", "insert"])
        if kind == "move":
            self.q(
                "update {src}.job_time_entries set worked_at = %s where id = %s", self.when(), entry
            )
        elif kind == "hours":
            self.q("update {src}.job_time_entries set hours = hours + 1.25 where id = %s", entry)
        elif kind == "delete":
            self.q("delete from {src}.job_time_entries where id = %s", entry)
        else:
            at = self.when()
            self.q(
                "insert into {src}.job_time_entries values (%s, %s, %s, 2.5, %s, %s)",
                uuid.uuid4(), org, self.pick("jobs", org), at, at,
            )  # fmt: skip
        return f"time entry {entry} {kind}"

    def warranty_change(self, org: uuid.UUID) -> str:
        claim = self.pick("warranty_claims", org)
        kind = self.rng.choice(["resolve", "move", "soft_delete", "insert"])
        if kind == "resolve":
            self.q(
                "update {src}.warranty_claims set status = 'resolved',"
                " resolved_at = greatest(created_at, %s) where id = %s",
                self.when(), claim,
            )  # fmt: skip
        elif kind == "move":
            self.q(
                "update {src}.warranty_claims set created_at = %s, resolved_at = null,"
                " status = 'pending' where id = %s",
                self.when(), claim,
            )  # fmt: skip
        elif kind == "soft_delete":
            self.q("update {src}.warranty_claims set deleted_at = now() where id = %s", claim)
        else:
            at = self.when()
            self.q(
                "insert into {src}.warranty_claims values (%s, %s, %s, null, 'pending',"
                " 'defect', %s, null, %s, null)",
                uuid.uuid4(), org, self.pick("customers", org), at, at,
            )  # fmt: skip
        return f"warranty claim {claim} {kind}"

    def customer_change(self, org: uuid.UUID) -> str:
        customer = self.pick("customers", org)
        status = self.rng.choice(["active", "inactive", "prospect"])
        if self.rng.random() < 0.3:
            self.q("update {src}.customers set deleted_at = now() where id = %s", customer)
            return f"customer {customer} soft-deleted"
        self.q("update {src}.customers set status = %s where id = %s", status, customer)
        return f"customer {customer} {status}"

    def steps(self) -> list[Callable[[uuid.UUID], str]]:
        return [
            self.order_insert, self.order_update, self.order_soft_delete, self.order_delete,
            self.item_change, self.item_change, self.product_capacity, self.opportunity_change,
            self.job_change, self.job_change, self.time_entry_change, self.warranty_change,
            self.customer_change,
        ]  # fmt: skip


def ranges(today: dt.date, rng: random.Random) -> list[tuple[dt.date, dt.date]]:
    """Two years, a past quarter and a past month (wholly materialized), the last week."""
    day = dt.timedelta(days=1)
    start = today - rng.randrange(60, 700) * day
    return [
        (today - 799 * day, today),
        (today - 400 * day, today - 200 * day),
        (start, start + 30 * day),
        (today - 6 * day, today),
    ]


def check_exact(
    client: Client, conn: Conn, dashboard: Dashboard, orgs: list[uuid.UUID],
    spans: list[tuple[dt.date, dt.date]], context: str,
) -> None:  # fmt: skip
    for org in orgs:
        for date_from, date_to in spans:
            result = client.get_metrics(org, date_from, date_to)
            expected = naive_metrics(conn, dashboard.settings, org, date_from, date_to)
            differences = {
                k: (result.metrics[k], expected[k])
                for k in METRIC_KEYS
                if result.metrics[k] != expected[k]
            }
            assert not differences, (
                f"{context}; org {org} {date_from}..{date_to}: (hybrid, naive) {differences}"
            )


def strategies(conn: Conn, schema: str) -> dict[str, str]:
    rows = conn.execute(
        "select c.relname, c.relkind::text from pg_class c join pg_namespace n"
        " on n.oid = c.relnamespace where n.nspname = %s and c.relname like 'mv\\_%%'"
        " and c.relkind in ('m', 'r', 'p') order by 1",
        (schema,),
    ).fetchall()
    return {name: "concurrent" if kind == "m" else "incremental" for name, kind in rows}


def refresh_consumes_changes() -> bool:
    """Whether the checked-out materializations delete change rows (issue 13 item 3)."""
    texts = [
        p.read_text()
        for p in (PROJECT_DIR / "macros").rglob("*.sql")
        if "capture" not in p.parts and p.name != "bookkeeping.sql"
    ]
    return any(CHANGES_TABLE in text for text in texts)


def test_random_changes_are_exact_before_and_after_a_refresh(
    dashboard: Dashboard, conn: Conn, client: Client, record_property: Callable[..., None]
) -> None:
    settings = dashboard.settings
    installed = conn.execute(
        "select count(*) from pg_trigger t join pg_class c on c.oid = t.tgrelid"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and t.tgname like 'dq\\_capture\\_%%'",
        (settings.source_schema,),
    ).fetchone()
    assert installed and installed[0] > 0, "the capture triggers are not installed"
    changes = sql.Identifier(settings.schema, CHANGES_TABLE)
    leftovers: list[str] = []
    for sequence in range(SEQUENCES):
        seed = BASE_SEED + sequence
        rng = random.Random(seed)
        world = World(conn, dashboard, rng)
        done: list[str] = []
        for step in range(STEPS):
            org = rng.choice(world.orgs)
            done.append(rng.choice(world.steps())(org))
            context = f"seed {seed} (DASHQUERY_PROPERTY_SEED={BASE_SEED}), step {step}: {done}"
            check_exact(client, conn, dashboard, [org], ranges(world.today, rng), context)
        run_dbt(REFRESH_ALL, settings)
        context = f"after the refresh, seed {seed} (DASHQUERY_PROPERTY_SEED={BASE_SEED}): {done}"
        check_exact(client, conn, dashboard, world.orgs, ranges(world.today, rng), context)
        assert not materialized_differences(conn, settings.schema), context
        left = conn.execute(
            sql.SQL("select daily_view, count(*) from {} group by 1 order by 1").format(changes)
        ).fetchall()
        if left:
            leftovers.append(f"sequence {sequence}: {dict(left)}")
    used = strategies(conn, settings.schema)
    record_property("refresh_strategies", used)
    print(f"refresh strategies: {used}; seed {BASE_SEED}")
    if leftovers and not refresh_consumes_changes():
        pytest.xfail(
            f"the refresh does not consume change rows yet (issue 13 item 3 not in this"
            f" checkout; strategies {used}): left {leftovers}"
        )
    assert not leftovers, f"change rows left after a refresh with no writers: {leftovers}"
