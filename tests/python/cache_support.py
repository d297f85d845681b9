"""Helpers for the cache tests: a committed write that changes today's numbers, and the
§3 values compared by type as well as by value."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from dashquery.catalog import METRIC_KEYS
from dashquery.result import DashboardMetrics
from tests.python.helpers import Dashboard


def add_order_now(dashboard: Dashboard, org: uuid.UUID, *, quietly: bool = False) -> None:
    """A delivered order created now (today, read live): orders_count of any range ending
    today goes up by one, and revenue by 4321 cents.

    ``quietly``: with triggers off (session_replication_role = replica), so neither a change
    row nor a notification, whether or not the capture triggers are installed."""
    orders = sql.SQL("{}.orders").format(sql.Identifier(dashboard.settings.source_schema))
    with psycopg.connect(dashboard.settings.conninfo, autocommit=True) as conn:
        if quietly:
            conn.execute("set session_replication_role = replica")
        inserted = conn.execute(
            sql.SQL(
                "insert into {orders} select gen_random_uuid(), organization_id, customer_id,"
                " 'delivered', 4321, now(), now(), null from {orders}"
                " where organization_id = %s and deleted_at is null limit 1"
            ).format(orders=orders),
            (org,),
        )
        assert inserted.rowcount == 1


def typed(result: DashboardMetrics) -> dict[str, Any]:
    """Every §3 value with its type (and its breakdown's value types): 1 == 1.0 == Decimal(1)
    in Python, so equality alone would not catch a float served for a Decimal."""
    return {key: typed_value(result.metrics[key]) for key in METRIC_KEYS}


def typed_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: typed_value(v) for k, v in value.items()}
    return (type(value).__name__, str(value))
