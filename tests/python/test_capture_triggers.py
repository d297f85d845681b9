"""Change capture (issue 13 item 1): the triggers dbt installs record every group a change
affects, in the changing transaction.

The oracle is generic: before and after each change, every daily view's rows (and the
current-state row) of the organization are snapshotted; the (daily view, business day)
groups whose rows differ must all be among the dashquery_changes rows the change's own
transaction wrote. Recording a group that did not change is allowed (conservative), missing
one fails. Each kind of change runs on every application table a block reads.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashquery.catalog import (
    CAPTURE_PREFIX,
    CAPTURED_TABLES,
    CHANGES_CHANNEL,
    CHANGES_SNAPSHOT_DAY,
    CHANGES_TABLE,
    DAILY_VIEWS,
    DEPLOYMENT_TABLE,
)
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import run_dbt
from tests.python.helpers import SCRATCH_SEED, Dashboard, build_dashboard

Conn = psycopg.Connection[Any]
Change = Callable[[Conn, uuid.UUID, "Tables"], None]


class Tables:
    """The application tables of a dashboard, as composable SQL."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.source = dashboard.settings.source_schema
        self.views = dashboard.settings.schema

    def q(self, text: str) -> sql.Composed:
        """``text`` with {table} placeholders as application tables, {changes} etc. as ours."""
        names = {t: sql.Identifier(self.source, t) for t in (*CAPTURED_TABLES,)}
        names["changes"] = sql.Identifier(self.views, CHANGES_TABLE)
        names["deployment"] = sql.Identifier(self.views, DEPLOYMENT_TABLE)
        return sql.SQL(text).format(**names)


@pytest.fixture(scope="module")
def capture_dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    return build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)


@pytest.fixture(scope="module")
def tables(capture_dashboard: Dashboard) -> Tables:
    return Tables(capture_dashboard)


def _snapshot(conn: Conn, views_schema: str, org: uuid.UUID) -> dict[tuple[str, str], Any]:
    """{(daily view, business day as text): its rows} for one organization."""
    groups: dict[tuple[str, str], Any] = {}
    for view in DAILY_VIEWS:
        rows = conn.execute(
            sql.SQL("select to_jsonb(v) from {} as v where organization_id = %s").format(
                sql.Identifier(views_schema, view)
            ),
            (org,),
        ).fetchall()
        for (row,) in rows:
            day = row.pop("business_day", CHANGES_SNAPSHOT_DAY)
            groups.setdefault((view, day), []).append(json.dumps(row, sort_keys=True))
    return {key: sorted(rows) for key, rows in groups.items()}


def _check(
    dashboard: Dashboard,
    tables: Tables,
    org: uuid.UUID,
    name: str,
    change: Change,
    *,
    expect_change: bool = True,
) -> set[tuple[str, str]]:
    """Run ``change`` in one transaction; the groups it changed must all be recorded."""
    views = dashboard.settings.schema
    with dashboard.connect() as conn:
        before = _snapshot(conn, views, org)
        with conn.transaction():
            (xact,) = conn.execute("select pg_current_xact_id()::text").fetchone()
            change(conn, org, tables)
        after = _snapshot(conn, views, org)
        recorded = set(
            conn.execute(
                tables.q(
                    "select daily_view, business_day::text from {changes}"
                    " where organization_id = %s and xact_id = %s::xid8"
                ),
                (org, xact),
            ).fetchall()
        )
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    if expect_change:
        assert changed, f"{name}: the change changed no daily view row (a vacuous case)"
    missing = changed - recorded
    assert not missing, f"{name}: changed but not recorded: {sorted(missing)}"
    return recorded


def _one(conn: Conn, tables: Tables, query: str, *params: Any) -> Any:
    row = conn.execute(tables.q(query), params).fetchone()
    assert row is not None, query
    return row[0] if len(row) == 1 else row


def _orgs(dashboard: Dashboard) -> list[uuid.UUID]:
    return [org for org in dashboard.organization_ids if org != dashboard.empty_organization_id]


# A completed live job whose live order has a line of a product with a positive capacity.
_ENERGY_JOB = """
    select j.id, j.order_id, oi.id, oi.product_id from {jobs} as j
    join {orders} as o on o.id = j.order_id and o.deleted_at is null
    join {order_items} as oi on oi.order_id = o.id
    join {products} as p on p.id = oi.product_id
    where j.organization_id = %s and j.status = 'completed' and j.completed_at is not null
      and j.deleted_at is null and jsonb_typeof(p.specifications -> 'capacity_kwh') = 'number'
      and (p.specifications ->> 'capacity_kwh')::numeric > 0
    {extra}
    order by j.completed_at limit 1
"""


def _energy_job(conn: Conn, tables: Tables, org: uuid.UUID, extra: str = "") -> Any:
    return _one(conn, tables, _ENERGY_JOB.replace("{extra}", extra), org)


def _customer(conn: Conn, tables: Tables, org: uuid.UUID) -> uuid.UUID:
    return _one(
        conn,
        tables,
        "select id from {customers} where organization_id = %s and deleted_at is null"
        " order by created_at limit 1",
        org,
    )


def _ago(days: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def test_orders(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[0]
    new_order = uuid.uuid4()

    def insert(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("insert into {orders} values (%s, %s, %s, 'delivered', 12345, %s, now(), null)"),
            (new_order, org, _customer(conn, t, org), _ago(300)),
        )

    def update_status(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {orders} set status = 'cancelled' where id = %s"), (new_order,))

    def move_day(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("update {orders} set created_at = created_at - interval '40 days' where id = %s"),
            (new_order,),
        )

    def customer_only(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {orders} set customer_id = (select id from {customers}"
                " where organization_id = %s and id <> {orders}.customer_id"
                " and deleted_at is null order by id limit 1) where id = %s"
            ),
            (org, new_order),
        )

    def total_only(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {orders} set total_cents = 54321 where id = %s"), (new_order,))

    def hard_delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {orders} where id = %s"), (new_order,))

    def soft_delete_with_job(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, order_id, _, _) = _energy_job(conn, t, org)
        conn.execute(t.q("update {orders} set deleted_at = now() where id = %s"), (order_id,))

    def undelete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {orders} set deleted_at = null where organization_id = %s"
                " and deleted_at > now() - interval '1 hour'"
            ),
            (org,),
        )

    def bulk(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {orders} set status = 'cancelled' where organization_id = %s"
                " and status = 'delivered' and created_at < now() - interval '500 days'"
            ),
            (org,),
        )

    for name, change in [
        ("insert back-dated", insert),
        ("total only", total_only),
        ("status", update_status),
        ("move day", move_day),
        ("customer only", customer_only),
        ("hard delete", hard_delete),
        ("soft delete (its job's energy)", soft_delete_with_job),
        ("undelete", undelete),
        ("bulk update", bulk),
    ]:
        recorded = _check(capture_dashboard, tables, org, f"orders: {name}", change)
        views = {view for view, _ in recorded}
        if name.startswith("soft delete"):
            assert "daily_energy" in views
        if name == "total only":
            # Precision (on_update_of): a total changes no customer's days.
            assert "daily_order_customers" not in views, recorded


def test_soft_deletes_found_by_the_mark_trigger_in_any_transaction_shape(
    capture_dashboard: Dashboard, tables: Tables
) -> None:
    """An UPDATE reads the dependants of on_update_of mappings (an order's jobs' energy days)
    only when the row-level mark trigger saw a row change those columns: after a plain update
    in the same transaction, after a soft delete rolled back to a savepoint, and inside a
    multi-row UPDATE where one row of many is soft-deleted, the energy day is still recorded."""
    org = _orgs(capture_dashboard)[0]

    def shapes(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, first, _, _) = _energy_job(conn, t, org)
        (_, second, _, _) = _energy_job(conn, t, org, f"and j.order_id <> '{first}'")
        conn.execute(
            t.q("update {orders} set total_cents = total_cents + 1 where id = %s"), (first,)
        )
        with conn.transaction():  # a savepoint: its soft delete (and its mark) rolled back
            conn.execute(t.q("update {orders} set deleted_at = now() where id = %s"), (second,))
            raise psycopg.Rollback()
        conn.execute(
            t.q(
                "update {orders} set total_cents = total_cents + 1,"
                " deleted_at = case when id = %s then now() else deleted_at end"
                " where organization_id = %s and (id = %s or id in"
                " (select id from {orders} where organization_id = %s limit 20))"
            ),
            (first, org, first, org),
        )

    recorded = _check(capture_dashboard, tables, org, "orders: mark shapes", shapes)
    assert "daily_energy" in {view for view, _ in recorded}


def test_order_items(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[0]
    new_item = uuid.uuid4()

    def insert(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, order_id, _, product_id) = _energy_job(conn, t, org)
        conn.execute(
            t.q("insert into {order_items} values (%s, %s, %s, %s, 3, 100, 300, now())"),
            (new_item, org, order_id, product_id),
        )

    def quantity(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {order_items} set quantity = 7 where id = %s"), (new_item,))

    def repoint(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, order_id, _, _) = _energy_job(conn, t, org)
        other = _energy_job(
            conn,
            t,
            org,
            "and j.order_id <> '" + str(order_id) + "'"
            " and (j.completed_at at time zone 'UTC')::date > (now() - interval '200 days')::date",
        )
        conn.execute(
            t.q("update {order_items} set order_id = %s where id = %s"), (other[1], new_item)
        )

    def delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {order_items} where id = %s"), (new_item,))

    for name, change in [
        ("insert", insert),
        ("quantity", quantity),
        ("re-pointed to another order", repoint),
        ("delete", delete),
    ]:
        _check(capture_dashboard, tables, org, f"order_items: {name}", change)


def test_products(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[1]
    new_product = uuid.uuid4()

    def capacity(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, _, _, product_id) = _energy_job(conn, t, org)
        conn.execute(
            t.q(
                "update {products} set specifications = jsonb_set(specifications,"
                " '{{capacity_kwh}}', to_jsonb((specifications ->> 'capacity_kwh')::numeric + 7))"
                " where id = %s"
            ),
            (product_id,),
        )

    def insert(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "insert into {products} values (%s, %s, 'New', '{{\"capacity_kwh\": 5}}', 1, now())"
            ),
            (new_product, org),
        )

    def delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {products} where id = %s"), (new_product,))

    recorded = _check(capture_dashboard, tables, org, "products: capacity", capacity)
    assert len({day for view, day in recorded if view == "daily_energy"}) >= 1
    _check(capture_dashboard, tables, org, "products: insert", insert, expect_change=False)
    _check(capture_dashboard, tables, org, "products: delete", delete, expect_change=False)


def test_opportunities(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[0]
    new_opp = uuid.uuid4()

    def insert(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "insert into {opportunities} values"
                " (%s, %s, %s, 'proposal', 50000, 40, null, null, %s, now(), null)"
            ),
            (new_opp, org, _customer(conn, t, org), _ago(250)),
        )

    def close(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("update {opportunities} set stage = 'won', closed_at = %s where id = %s"),
            (_ago(30), new_opp),
        )

    def move_closed(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {opportunities} set closed_at = closed_at - interval '5 days' where id = %s"
            ),
            (new_opp,),
        )

    def close_existing(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        opp = _one(
            conn,
            t,
            "select id from {opportunities} where organization_id = %s and deleted_at is null"
            " and stage not in ('won', 'lost') order by created_at limit 1",
            org,
        )
        conn.execute(
            t.q("update {opportunities} set stage = 'lost', closed_at = %s where id = %s"),
            (_ago(100), opp),
        )

    def soft_delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {opportunities} set deleted_at = now() where id = %s"), (new_opp,))

    def undelete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {opportunities} set deleted_at = null where id = %s"), (new_opp,))

    def delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {opportunities} where id = %s"), (new_opp,))

    for name, change in [
        ("insert back-dated", insert),
        ("closed", close),
        ("closed day moved", move_closed),
        ("an old one lost", close_existing),
        ("soft delete", soft_delete),
        ("undelete", undelete),
        ("delete", delete),
    ]:
        _check(capture_dashboard, tables, org, f"opportunities: {name}", change)


def test_jobs_and_time_entries(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[1]
    new_job = uuid.uuid4()
    new_entry = uuid.uuid4()

    def insert_completed(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        (_, order_id, _, _) = _energy_job(conn, t, org)
        conn.execute(
            t.q(
                "insert into {jobs} values"
                " (%s, %s, %s, %s, 'completed', %s, %s, 6.5, now(), now(), null)"
            ),
            (new_job, org, order_id, _customer(conn, t, org), _ago(90), _ago(80)),
        )

    def reschedule(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        job = _one(
            conn,
            t,
            "select id from {jobs} where organization_id = %s and deleted_at is null"
            " and status = 'scheduled' order by scheduled_at limit 1",
            org,
        )
        conn.execute(
            t.q("update {jobs} set scheduled_at = scheduled_at + interval '3 days' where id = %s"),
            (job,),
        )

    def complete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("update {jobs} set completed_at = completed_at - interval '9 days' where id = %s"),
            (new_job,),
        )

    def reorder(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        other = _one(
            conn,
            t,
            "select oi.order_id from {order_items} as oi"
            " join {orders} as o on o.id = oi.order_id and o.deleted_at is null"
            " join {products} as p on p.id = oi.product_id"
            " where oi.organization_id = %s and jsonb_typeof(p.specifications -> 'capacity_kwh')"
            " = 'number' and (p.specifications ->> 'capacity_kwh')::numeric > 0"
            " and oi.order_id <> (select order_id from {jobs} where id = %s)"
            " order by oi.order_id limit 1",
            org,
            new_job,
        )
        conn.execute(t.q("update {jobs} set order_id = %s where id = %s"), (other, new_job))

    def hours_only(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {jobs} set estimated_hours = 7.75 where id = %s"), (new_job,))

    def reopen(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {jobs} set status = 'in_progress' where id = %s"), (new_job,))

    def recomplete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {jobs} set status = 'completed' where id = %s"), (new_job,))

    def insert_entry(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("insert into {job_time_entries} values (%s, %s, %s, 4.25, %s, now())"),
            (new_entry, org, new_job, _ago(85)),
        )

    def entry_hours(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {job_time_entries} set hours = 2 where id = %s"), (new_entry,))

    def entry_day(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {job_time_entries} set worked_at = worked_at - interval '2 days'"
                " where id = %s"
            ),
            (new_entry,),
        )

    def soft_delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {jobs} set deleted_at = now() where id = %s"), (new_job,))

    def undelete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {jobs} set deleted_at = null where id = %s"), (new_job,))

    def soft_delete_existing(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        job = _one(
            conn,
            t,
            "select j.id from {jobs} as j join {job_time_entries} as e on e.job_id = j.id"
            " where j.organization_id = %s and j.deleted_at is null and j.status = 'completed'"
            " order by j.completed_at limit 1",
            org,
        )
        conn.execute(t.q("update {jobs} set deleted_at = now() where id = %s"), (job,))

    def hard_delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {job_time_entries} where job_id = %s"), (new_job,))
        conn.execute(t.q("delete from {jobs} where id = %s"), (new_job,))

    for name, change in [
        ("insert completed back-dated", insert_completed),
        ("rescheduled across days", reschedule),
        ("completion day moved", complete),
        ("order re-pointed (order_id only)", reorder),
        ("estimated hours only", hours_only),
        ("reopened (status only)", reopen),
        ("completed again (status only)", recomplete),
        ("time entry inserted", insert_entry),
        ("time entry hours", entry_hours),
        ("time entry day moved", entry_day),
        ("job with time entries soft-deleted", soft_delete),
        ("undeleted", undelete),
        ("an old job with time entries soft-deleted", soft_delete_existing),
        ("job with time entries deleted", hard_delete),
    ]:
        recorded = _check(capture_dashboard, tables, org, f"jobs: {name}", change)
        days = {day for view, day in recorded if view == "daily_jobs"}
        if name == "estimated hours only":
            # Precision (on_update_of): hours change no energy and no completed day, only
            # the scheduled one (the job's completed day is another day).
            assert "daily_energy" not in {view for view, _ in recorded}, recorded
            assert len(days) == 1, recorded
        if "rescheduled" in name:
            assert len(days) >= 2, f"old and new scheduled days: {days}"


def test_warranty_claims_and_customers(capture_dashboard: Dashboard, tables: Tables) -> None:
    org = _orgs(capture_dashboard)[1]
    claim = uuid.uuid4()
    customer = uuid.uuid4()

    def insert_claim(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "insert into {warranty_claims} values"
                " (%s, %s, %s, null, 'pending', 'defect', %s, null, now(), null)"
            ),
            (claim, org, _customer(conn, t, org), _ago(365)),
        )

    def resolve_claim(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q(
                "update {warranty_claims} set status = 'resolved', resolved_at = now()"
                " where id = %s"
            ),
            (claim,),
        )

    def soft_delete_claim(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {warranty_claims} set deleted_at = now() where id = %s"), (claim,))

    def undelete_claim(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {warranty_claims} set deleted_at = null where id = %s"), (claim,))

    def delete_claim(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("delete from {warranty_claims} where id = %s"), (claim,))

    def insert_customer(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("insert into {customers} values (%s, %s, 'New', 'active', now(), now(), null)"),
            (customer, org),
        )

    def customer_status(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {customers} set status = 'inactive' where id = %s"), (customer,))

    def customer_soft_delete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(
            t.q("update {customers} set deleted_at = now() where id = %s"),
            (customer,),
        )

    def customer_undelete(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("update {customers} set deleted_at = null where id = %s"), (customer,))

    for name, change in [
        ("claim inserted back-dated", insert_claim),
        ("claim resolved", resolve_claim),
        ("claim soft-deleted", soft_delete_claim),
        ("claim undeleted", undelete_claim),
        ("claim deleted", delete_claim),
        ("customer inserted", insert_customer),
        ("customer soft-deleted", customer_soft_delete),
        ("customer undeleted", customer_undelete),
        ("customer status", customer_status),
    ]:
        _check(capture_dashboard, tables, org, f"{name}", change)


def test_a_new_organization_gets_its_current_state(
    capture_dashboard: Dashboard, tables: Tables
) -> None:
    org = uuid.uuid4()

    def insert(conn: Conn, org: uuid.UUID, t: Tables) -> None:
        conn.execute(t.q("insert into {organizations} values (%s, 'New', now(), now())"), (org,))

    _check(capture_dashboard, tables, org, "organization inserted", insert)


def test_the_application_role_needs_no_privilege_on_the_view_schema(
    capture_dashboard: Dashboard, tables: Tables
) -> None:
    """The functions are SECURITY DEFINER: a role that may only write the application tables
    still has its changes recorded (and notified)."""
    org = _orgs(capture_dashboard)[0]
    role = f"app_writer_{uuid.uuid4().hex[:8]}"
    source = sql.Identifier(tables.source)
    with capture_dashboard.connect() as conn:
        conn.execute(sql.SQL("create role {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(source, sql.Identifier(role)))
        conn.execute(
            sql.SQL("grant select, insert, update, delete on all tables in schema {} to {}").format(
                source, sql.Identifier(role)
            )
        )
        listener = psycopg.connect(capture_dashboard.settings.conninfo, autocommit=True)
        with listener:
            listener.execute(sql.SQL("listen {}").format(sql.Identifier(CHANGES_CHANNEL)))
            with conn.transaction():
                conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                (xact,) = conn.execute("select pg_current_xact_id()::text").fetchone()
                conn.execute(
                    tables.q(
                        "update {orders} set total_cents = total_cents + 1 where id ="
                        " (select id from {orders} where organization_id = %s limit 1)"
                    ),
                    (org,),
                )
            payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        count = _one(conn, tables, "select count(*) from {changes} where xact_id = %s::xid8", xact)
    assert count >= 1  # daily_orders (a total changes no customer days: on_update_of)
    assert payloads and str(org) in payloads[0].split(",")


def _capture_objects(dashboard: Dashboard) -> tuple[list[Any], list[Any], Any]:
    with dashboard.connect() as conn:
        triggers = conn.execute(
            "select tgrelid::regclass::text, tgname, xmin::text from pg_trigger"
            " where tgname like %s order by 1, 2",
            (CAPTURE_PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
        functions = conn.execute(
            "select proname, xmin::text from pg_proc where proname like %s order by 1",
            (CAPTURE_PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
        state = conn.execute(
            sql.SQL("select capture, capture_since is not null from {}").format(
                sql.Identifier(dashboard.settings.schema, DEPLOYMENT_TABLE)
            )
        ).fetchone()
    return triggers, functions, state


def _captured_update(dashboard: Dashboard, tables: Tables) -> tuple[int, list[str]]:
    """One order updated in its own transaction: its change rows and the payloads notified."""
    org = _orgs(dashboard)[0]
    with (
        dashboard.connect() as conn,
        psycopg.connect(dashboard.settings.conninfo, autocommit=True) as listener,
    ):
        listener.execute(sql.SQL("listen {}").format(sql.Identifier(CHANGES_CHANNEL)))
        with conn.transaction():
            (xact,) = conn.execute("select pg_current_xact_id()::text").fetchone()
            conn.execute(
                tables.q(
                    "update {orders} set total_cents = total_cents + 1 where id ="
                    " (select id from {orders} where organization_id = %s limit 1)"
                ),
                (org,),
            )
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
        count = _one(conn, tables, "select count(*) from {changes} where xact_id = %s::xid8", xact)
    return count, payloads


def test_an_insert_or_delete_reads_its_rows_once_for_blocks_with_the_same_select(
    capture_dashboard: Dashboard,
) -> None:
    """daily_orders and daily_order_customers map an order to its own day; only the latter
    names on_update_of columns, which matter to an UPDATE alone. So an INSERT's and a
    DELETE's capture scan their transition rows once for both (cross joined with the two
    views), not once each: test_orders checks that both still get their rows."""
    with capture_dashboard.connect() as conn:
        row = conn.execute(
            "select prosrc from pg_proc where proname = %s", (f"{CAPTURE_PREFIX}orders",)
        ).fetchone()
    assert row is not None
    source = row[0]
    insert = source.split("tg_op = 'INSERT'")[1].split("tg_op = 'UPDATE'")[0]
    delete = source.split("\n    else\n")[-1]
    shared = "('daily_order_customers'::text), ('daily_orders'::text)"
    for branch, rows in ((insert, "from dq_new"), (delete, "from dq_old")):
        assert shared in branch
        # the energy mapping's own scan, and the one shared by the two day mappings
        assert branch.count(rows) == 2, branch


def test_notify_off_still_records_every_change(
    capture_dashboard: Dashboard, tables: Tables
) -> None:
    """var dashquery_capture_notify: false (e.g. on Citus, where pg_notify in a shard's trigger
    breaks multi-shard transactions) replaces only the functions: the same change rows, no
    notification; back on, notifications again."""
    settings = capture_dashboard.settings
    off = run_dbt(
        ["run", "--select", "capture_triggers", "--vars", "{dashquery_capture_notify: false}"],
        settings,
    )
    assert "dashquery capture: installing" in off.output
    try:
        with capture_dashboard.connect() as conn:
            sources = conn.execute(
                "select prosrc from pg_proc where proname like %s",
                (CAPTURE_PREFIX.replace("_", "\\_") + "%",),
            ).fetchall()
        assert len(sources) == len(CAPTURED_TABLES)
        assert not [s for (s,) in sources if "pg_notify" in s]
        count, payloads = _captured_update(capture_dashboard, tables)
        assert count >= 1 and payloads == []  # daily_orders
    finally:
        run_dbt(["run", "--select", "capture_triggers"], settings)
    count, payloads = _captured_update(capture_dashboard, tables)
    assert count >= 1 and payloads and str(_orgs(capture_dashboard)[0]) in payloads[0]


def test_capture_off_removes_everything_and_on_reinstalls(capture_dashboard: Dashboard) -> None:
    """Last in the module: it switches capture off and on again."""
    settings = capture_dashboard.settings
    triggers, functions, state = _capture_objects(capture_dashboard)
    names = {name for _, name, _ in triggers}
    for table in CAPTURED_TABLES:
        assert {f"{CAPTURE_PREFIX}{table}_{e}" for e in ("ins", "upd", "del")} <= names
    # Beside them, the row-level mark triggers of tables with on_update_of mappings only.
    marks = {n for n in names if not n.endswith(("_ins", "_upd", "_del"))}
    assert marks and all(n.endswith("_mark") for n in marks), marks
    assert f"{CAPTURE_PREFIX}orders_mark" in marks  # an order's soft delete -> energy days
    assert len(functions) == len(CAPTURED_TABLES)
    assert state == (True, True)

    again = run_dbt(["run", "--select", "capture_triggers"], settings)
    assert "dashquery capture: installing" not in again.output
    assert _capture_objects(capture_dashboard) == (triggers, functions, state), "DDL on a rerun"

    off = run_dbt(
        ["run", "--select", "capture_triggers", "--vars", "{dashquery_capture: false}"], settings
    )
    assert "dashquery capture: removing" in off.output
    assert _capture_objects(capture_dashboard) == ([], [], (False, False))
    with capture_dashboard.connect() as conn:
        source = sql.Identifier(settings.source_schema, "orders")
        changes = sql.Identifier(settings.schema, CHANGES_TABLE)
        before = conn.execute(sql.SQL("select count(*) from {}").format(changes)).fetchone()
        conn.execute(sql.SQL("update {} set total_cents = total_cents + 1").format(source))
        after = conn.execute(sql.SQL("select count(*) from {}").format(changes)).fetchone()
    assert before == after

    off_again = run_dbt(
        ["run", "--select", "capture_triggers", "--vars", "{dashquery_capture: false}"], settings
    )
    assert "dashquery capture: removing" not in off_again.output

    run_dbt(["run", "--select", "capture_triggers"], settings)
    triggers_on, functions_on, state_on = _capture_objects(capture_dashboard)
    assert [t[:2] for t in triggers_on] == [t[:2] for t in triggers]
    assert [f[:1] for f in functions_on] == [f[:1] for f in functions]
    assert state_on == (True, True)
