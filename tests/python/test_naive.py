"""The naive query against a tiny hand-made data set whose every number is worked out below.

Each row is chosen to exercise one rule of contract §3; the expected values are literals
derived in comments from those rows (correct here because the data is hand-made, not
generated). Business time zone: Australia/Sydney, in June 2024 a fixed UTC+10 (no DST),
so ``'2024-06-09 23:59+10'`` is local 23:59 on 9 June. The range is 2024-06-10..2024-06-20.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
import pytest
from psycopg import sql

from dashquery.config import Settings
from dashquery.dev.naive import naive_metrics

SCHEMA = "src_test"
APP_SCHEMA_SQL = Path(__file__).parents[2] / "dashquery" / "dev" / "sql" / "app_schema.sql"
SETTINGS = Settings(source_schema=SCHEMA, schema="dash_test", timezone="Australia/Sydney")
DATE_FROM, DATE_TO = date(2024, 6, 10), date(2024, 6, 20)

T0 = "2024-01-01 00:00+10"  # created/updated time of rows whose timestamps do not matter
BEFORE = "2024-06-09 23:59+10"  # last minute before the range (UTC date 2024-06-09)
FIRST = "2024-06-10 00:01+10"  # first minute of the range (UTC date still 2024-06-09)
LAST = "2024-06-20 23:59+10"  # last minute of the range (UTC date 2024-06-20)
AFTER = "2024-06-21 00:01+10"  # first minute after the range (UTC date still 2024-06-20)
GONE = "2024-06-30 12:00+10"  # a deleted_at value


def uid(label: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"dashquery-test:{label}")


ORG_A, ORG_B, ORG_EMPTY = uid("org-a"), uid("org-b"), uid("org-empty")

# Table name -> column names and rows; ids are labels turned into UUIDs by `load`.
ROWS: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {
    "organizations": (
        ("id", "name", "created_at", "updated_at"),
        [(ORG_A, "A", T0, T0), (ORG_B, "B", T0, T0), (ORG_EMPTY, "Empty", T0, T0)],
    ),
    "customers": (
        ("id", "organization_id", "name", "status", "created_at", "updated_at", "deleted_at"),
        [
            ("cA1", ORG_A, "a1", "active", T0, T0, None),
            ("cA2", ORG_A, "a2", "active", T0, T0, None),
            ("cA3", ORG_A, "a3", "inactive", T0, T0, None),
            ("cA4", ORG_A, "a4", "active", T0, T0, GONE),  # deleted: not an active customer
            ("cA5", ORG_A, "a5", "prospect", T0, T0, None),
            ("cB1", ORG_B, "b1", "active", T0, T0, None),
        ],
    ),
    "products": (
        ("id", "organization_id", "name", "specifications", "unit_price_cents", "created_at"),
        [
            ("pBig", ORG_A, "battery 13.5", '{"capacity_kwh": 13.5}', 900000, T0),
            ("pSmall", ORG_A, "battery 5", '{"capacity_kwh": 5}', 400000, T0),
            ("pInv", ORG_A, "inverter", '{"watts": 5000}', 200000, T0),  # no capacity_kwh
            ("pB", ORG_B, "battery 100", '{"capacity_kwh": 100}', 1, T0),
        ],
    ),
    "orders": (
        ("id", "organization_id", "customer_id", "status", "total_cents", "created_at",
         "updated_at", "deleted_at"),
        [
            ("o1", ORG_A, "cA1", "delivered", 100000, FIRST, T0, None),
            ("o2", ORG_A, "cA2", "confirmed", 50000, "2024-06-15 12:00+10", T0, None),
            ("o3", ORG_A, "cA3", "cancelled", 30000, "2024-06-12 10:00+10", T0, None),
            ("o4", ORG_A, "cA1", "delivered", 70000, LAST, T0, None),
            ("o5", ORG_A, "cA5", "delivered", 999999, BEFORE, T0, None),
            ("o6", ORG_A, "cA5", "shipped", 888888, AFTER, T0, None),
            ("o7", ORG_A, "cA5", "delivered", 777777, "2024-06-14 10:00+10", T0, GONE),
            ("o8", ORG_A, "cA2", "draft", 20000, "2024-06-18 09:00+10", T0, None),
            ("oB", ORG_B, "cB1", "delivered", 5555, "2024-06-15 12:00+10", T0, None),
        ],
    ),
    "order_items": (
        ("id", "organization_id", "order_id", "product_id", "quantity", "unit_price_cents",
         "line_total_cents", "created_at"),
        [
            ("i1", ORG_A, "o1", "pSmall", 2, 1, 2, T0),  # 2 x 5 = 10 kWh
            ("i2", ORG_A, "o1", "pInv", 1, 1, 1, T0),  # no capacity_kwh: 0
            ("i3", ORG_A, "o1", "pBig", 1, 1, 1, T0),  # 13.5; order o1 = 23.5 kWh
            ("i4", ORG_A, "o4", "pBig", 3, 1, 3, T0),  # order o4 = 40.5 kWh
            ("i5", ORG_A, "o7", "pSmall", 10, 1, 10, T0),  # order o7 is deleted: 0
            ("i6", ORG_A, "o2", "pSmall", 1, 1, 1, T0),  # order o2 = 5 kWh
            ("iB", ORG_B, "oB", "pB", 1, 1, 1, T0),
        ],
    ),
    "opportunities": (
        ("id", "organization_id", "customer_id", "stage", "value_cents", "probability",
         "closed_at", "created_at", "updated_at", "deleted_at"),
        [
            ("op1", ORG_A, "cA1", "new", 100001, 33, None, FIRST, T0, None),
            ("op2", ORG_A, "cA2", "qualified", 200000, 25, None, "2024-06-12 10:00+10", T0, None),
            ("op3", ORG_A, "cA2", "proposal", 50000, 50, None, BEFORE, T0, None),
            ("op4", ORG_A, "cA3", "negotiation", 80000, 75, None, "2024-06-15 10:00+10", T0,
             None),
            ("op5", ORG_A, "cA1", "won", 120000, 100, "2024-06-14 10:00+10",
             "2024-06-11 10:00+10", T0, None),
            ("op6", ORG_A, "cA1", "won", 300000, 90, LAST, "2024-05-01 10:00+10", T0, None),
            ("op7", ORG_A, "cA2", "won", 400000, 100, AFTER, "2024-06-16 10:00+10", T0, None),
            ("op8", ORG_A, "cA3", "lost", 60000, 0, "2024-06-18 10:00+10",
             "2024-06-13 10:00+10", T0, None),
            ("op9", ORG_A, "cA3", "lost", 70000, 20, BEFORE, "2024-04-01 10:00+10", T0, None),
            ("op10", ORG_A, "cA1", "new", 999000, 50, None, "2024-06-12 10:00+10", T0, GONE),
            ("op11", ORG_A, "cA1", "won", 555000, 100, "2024-06-13 10:00+10",
             "2024-06-12 10:00+10", T0, GONE),
            ("op12", ORG_A, "cA5", "lost", 10000, 10, FIRST, "2024-03-01 10:00+10", T0, None),
            ("opB1", ORG_B, "cB1", "new", 1000000, 100, None, "2024-06-12 10:00+10", T0, None),
            ("opB2", ORG_B, "cB1", "won", 1000000, 100, "2024-06-13 10:00+10",
             "2024-06-12 10:00+10", T0, None),
        ],
    ),
    "jobs": (
        ("id", "organization_id", "order_id", "customer_id", "status", "scheduled_at",
         "completed_at", "estimated_hours", "created_at", "updated_at", "deleted_at"),
        [
            ("j1", ORG_A, "o1", "cA1", "completed", "2024-06-11 08:00+10",
             "2024-06-11 16:00+10", "8.00", T0, T0, None),
            ("j2", ORG_A, "o7", "cA5", "completed", "2024-06-12 08:00+10",
             "2024-06-12 17:00+10", "4.50", T0, T0, None),
            ("j3", ORG_A, None, "cA2", "completed", "2024-06-13 08:00+10",
             "2024-06-13 12:00+10", "2.25", T0, T0, None),
            ("j4", ORG_A, "o4", "cA1", "completed", "2024-06-20 09:00+10", AFTER, "6.00", T0,
             T0, None),
            ("j5", ORG_A, "o2", "cA2", "scheduled", "2024-06-19 09:00+10", None, "3.00", T0,
             T0, None),
            ("j6", ORG_A, None, "cA3", "in_progress", "2024-06-05 09:00+10", None, "10.00", T0,
             T0, None),
            ("j7", ORG_A, None, "cA3", "cancelled", "2024-06-16 09:00+10", None, "1.00", T0,
             T0, None),
            ("j8", ORG_A, "o2", "cA2", "scheduled", "2024-06-15 09:00+10", None, "99.00", T0,
             T0, GONE),
            ("j9", ORG_A, "o4", "cA1", "completed", "2024-06-01 09:00+10", FIRST, "5.00", T0,
             T0, None),
            ("j10", ORG_A, "o2", "cA2", "completed", "2024-06-09 08:00+10", BEFORE, "1.50", T0,
             T0, None),
            ("jB", ORG_B, "oB", "cB1", "completed", "2024-06-12 08:00+10",
             "2024-06-12 16:00+10", "7.00", T0, T0, None),
            ("jB2", ORG_B, None, "cB1", "scheduled", "2024-06-12 08:00+10", None, "7.00", T0,
             T0, None),
        ],
    ),
    "job_time_entries": (
        ("id", "organization_id", "job_id", "hours", "worked_at", "created_at"),
        [
            ("t1", ORG_A, "j1", "8.00", "2024-06-11 12:00+10", T0),
            ("t2", ORG_A, "j1", "0.50", BEFORE, T0),
            ("t3", ORG_A, "j8", "5.00", "2024-06-15 12:00+10", T0),  # job j8 is deleted
            ("t4", ORG_A, "j6", "2.25", LAST, T0),  # job scheduled before the range: counts
            ("t5", ORG_A, "j3", "1.25", AFTER, T0),
            ("tB", ORG_B, "jB", "7.00", "2024-06-12 12:00+10", T0),
        ],
    ),
    "warranty_claims": (
        ("id", "organization_id", "customer_id", "product_id", "status", "claim_type",
         "created_at", "resolved_at", "updated_at", "deleted_at"),
        [
            ("w1", ORG_A, "cA1", "pBig", "pending", "defect", FIRST, None, T0, None),
            ("w2", ORG_A, "cA2", None, "resolved", "damage", "2024-06-12 10:00+10",
             "2024-06-13 16:00+10", T0, None),  # 30 hours
            ("w3", ORG_A, "cA3", "pSmall", "rejected", "performance", "2024-06-15 08:00+10",
             "2024-06-15 14:30+10", T0, None),  # 6.5 hours
            ("w4", ORG_A, "cA1", None, "approved", "defect", LAST, None, T0, None),
            ("w5", ORG_A, "cA1", None, "resolved", "defect", BEFORE, "2024-06-11 11:59+10",
             T0, None),  # 36 hours
            ("w6", ORG_A, "cA2", None, "pending", "damage", AFTER, None, T0, None),
            ("w7", ORG_A, "cA2", None, "approved", "defect", "2024-06-14 10:00+10", None, T0,
             GONE),
            ("wB", ORG_B, "cB1", None, "pending", "defect", "2024-06-14 10:00+10", None, T0,
             None),
        ],
    ),
}  # fmt: skip

ID_COLUMNS = {"id", "customer_id", "order_id", "product_id", "job_id"}


def load(conninfo: str) -> None:
    """Create the application tables in SCHEMA and insert ROWS."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("set search_path to {}").format(sql.Identifier(SCHEMA)))
        conn.execute(APP_SCHEMA_SQL.read_text())
        for table, (columns, rows) in ROWS.items():
            insert = sql.SQL("insert into {} ({}) values ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            )
            with conn.cursor() as cur:
                cur.executemany(insert, [_resolve_ids(columns, row) for row in rows])


def _resolve_ids(columns: tuple[str, ...], row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        uid(v) if c in ID_COLUMNS and isinstance(v, str) else v
        for c, v in zip(columns, row, strict=True)
    )


@pytest.fixture
def db(fresh_db: str) -> str:
    load(fresh_db)
    return fresh_db


def metrics(
    conninfo: str,
    org: UUID = ORG_A,
    date_from: date = DATE_FROM,
    date_to: date = DATE_TO,
    settings: Settings = SETTINGS,
) -> dict[str, Any]:
    # A new connection with the default search_path: the query must qualify every table.
    with psycopg.connect(conninfo) as conn:
        return naive_metrics(conn, settings, org, date_from, date_to)


EXPECTED_A = {
    # Orders created in range: o1 (FIRST), o2, o3, o4 (LAST), o8. Not o5 (BEFORE), o6
    # (AFTER), o7 (deleted), oB (org B).
    "orders_count": 5,
    "delivered_orders": 2,  # o1, o4
    "pending_orders": 2,  # o2 confirmed, o8 draft
    "cancelled_orders": 1,  # o3
    "total_order_value_cents": 240000,  # o1 100000 + o2 50000 + o4 70000 + o8 20000
    "revenue_cents": 170000,  # o1 100000 + o4 70000
    "average_order_value_cents": Decimal(60000),  # 240000 / 4 non-cancelled
    "unique_customers": 3,  # cA1 (o1, o4), cA2 (o2, o8), cA3 (o3, cancelled still counts)
    # Completed in range: j1 (o1: 23.5), j2 (deleted order o7: 0), j3 (no order: 0),
    # j9 (FIRST, o4: 40.5). Not j4 (AFTER), j10 (BEFORE), jB (org B).
    "kwh_deployed": Decimal("64.0"),
    # Created in range: op1 (FIRST), op2, op4, op5, op7, op8. Not op3 (BEFORE), op6, op9,
    # op12 (created earlier), op10/op11 (deleted), opB1/opB2 (org B).
    "new_opportunities": 6,
    "opportunities_by_stage": {
        "new": 1, "qualified": 1, "proposal": 0, "negotiation": 1, "won": 2, "lost": 1,
    },
    "pipeline_value_cents": 960001,  # 100001 + 200000 + 80000 + 120000 + 400000 + 60000
    # (100001*33 + 200000*25 + 80000*75 + 120000*100 + 400000*100 + 60000*0) / 100
    # = (3300033 + 5000000 + 6000000 + 12000000 + 40000000) / 100 = 66300033 / 100
    "weighted_pipeline_cents": Decimal("663000.33"),
    "won_opportunities": 2,  # op5 (closed 06-14), op6 (closed LAST, created long before)
    "lost_opportunities": 2,  # op8 (closed 06-18), op12 (closed FIRST); not op9 (BEFORE)
    "quote_win_rate": Decimal("0.5"),  # 2 / (2 + 2); op7 is won but closed AFTER
    "average_won_deal_cents": Decimal(210000),  # (op5 120000 + op6 300000) / 2
    # Scheduled in range: j1, j2, j3, j4 (completed), j5 (scheduled), j7 (cancelled).
    # Not j6 (06-05), j8 (deleted), j9 (06-01), j10 (06-09), jB/jB2 (org B).
    "jobs_scheduled": 6,
    "jobs_by_status": {"scheduled": 1, "in_progress": 0, "completed": 4, "cancelled": 1},
    "estimated_hours": Decimal("24.75"),  # 8.00 + 4.50 + 2.25 + 6.00 + 3.00 + 1.00
    "jobs_completed": 4,  # j1, j2, j3, j9 (see kwh_deployed)
    # t1 8.00 + t4 2.25; not t2 (BEFORE), t3 (deleted job j8), t5 (AFTER), tB (org B)
    "labor_hours": Decimal("10.25"),
    # Created in range: w1 (FIRST), w2, w3, w4 (LAST). Not w5 (BEFORE), w6 (AFTER),
    # w7 (deleted), wB (org B).
    "warranty_claims": 4,
    "claims_by_status": {"pending": 1, "approved": 1, "rejected": 1, "resolved": 1},
    "claims_by_type": {"defect": 2, "damage": 1, "performance": 1},
    "average_resolution_hours": Decimal("18.25"),  # (w2 30 + w3 6.5) / 2; w1, w4 unresolved
    # Current state, whatever the range:
    "active_installations": 2,  # j5 scheduled, j6 in_progress; not j8 (deleted), jB2 (B)
    "open_warranty_claims": 3,  # w1, w4, w6; not w7 (deleted), wB (org B)
    # op1 100001*33 + op2 200000*25 + op3 50000*50 + op4 80000*75 = 16800033, / 100;
    # not op10 (deleted), won/lost ones, opB1 (org B)
    "current_pipeline_cents": Decimal("168000.33"),
    "active_customers": 2,  # cA1, cA2; not cA4 (deleted), cB1 (org B)
}  # fmt: skip

INT_KEYS = {k for k, v in EXPECTED_A.items() if isinstance(v, int)}
DECIMAL_KEYS = {k for k, v in EXPECTED_A.items() if isinstance(v, Decimal)}


def test_every_contract_rule_on_hand_made_rows(db: str) -> None:
    result = metrics(db)
    assert list(result) == list(EXPECTED_A)  # exactly the §3 keys, in contract order
    assert result == EXPECTED_A


def test_python_types(db: str) -> None:
    result = metrics(db)
    for key in INT_KEYS:
        assert type(result[key]) is int, key
    for key in DECIMAL_KEYS:
        assert type(result[key]) is Decimal, key
    for key in ("opportunities_by_stage", "jobs_by_status", "claims_by_status", "claims_by_type"):
        assert all(type(n) is int for n in result[key].values()), key


def test_organization_without_rows(db: str) -> None:
    result = metrics(db, org=ORG_EMPTY)
    assert result == {
        "orders_count": 0, "delivered_orders": 0, "pending_orders": 0, "cancelled_orders": 0,
        "total_order_value_cents": 0, "revenue_cents": 0, "average_order_value_cents": None,
        "unique_customers": 0, "kwh_deployed": 0, "new_opportunities": 0,
        "opportunities_by_stage": {
            "new": 0, "qualified": 0, "proposal": 0, "negotiation": 0, "won": 0, "lost": 0,
        },
        "pipeline_value_cents": 0, "weighted_pipeline_cents": 0, "won_opportunities": 0,
        "lost_opportunities": 0, "quote_win_rate": None, "average_won_deal_cents": None,
        "jobs_scheduled": 0,
        "jobs_by_status": {"scheduled": 0, "in_progress": 0, "completed": 0, "cancelled": 0},
        "estimated_hours": 0, "jobs_completed": 0, "labor_hours": 0, "warranty_claims": 0,
        "claims_by_status": {"pending": 0, "approved": 0, "rejected": 0, "resolved": 0},
        "claims_by_type": {"defect": 0, "damage": 0, "performance": 0},
        "average_resolution_hours": None, "active_installations": 0,
        "open_warranty_claims": 0, "current_pipeline_cents": 0, "active_customers": 0,
    }  # fmt: skip
    assert all(type(result[k]) is int for k in INT_KEYS)
    assert all(type(result[k]) is Decimal for k in DECIMAL_KEYS - {
        "average_order_value_cents", "quote_win_rate", "average_won_deal_cents",
        "average_resolution_hours",
    })  # fmt: skip


def test_other_organization_sees_only_its_rows(db: str) -> None:
    result = metrics(db, org=ORG_B)
    assert result["orders_count"] == 1 and result["revenue_cents"] == 5555  # oB
    assert result["kwh_deployed"] == Decimal(100)  # jB -> oB -> 1 x pB (100 kWh)
    assert result["new_opportunities"] == 2  # opB1, opB2
    assert result["won_opportunities"] == 1 and result["quote_win_rate"] == 1  # opB2
    assert result["labor_hours"] == Decimal(7)  # tB
    assert result["active_installations"] == 1  # jB2
    assert result["open_warranty_claims"] == 1  # wB
    assert result["current_pipeline_cents"] == Decimal(1000000)  # opB1 1000000 * 100 / 100
    assert result["active_customers"] == 1  # cB1


def test_single_day_just_before_the_range(db: str) -> None:
    # 2024-06-09 in Sydney holds exactly the BEFORE rows.
    day = date(2024, 6, 9)
    result = metrics(db, date_from=day, date_to=day)
    assert result["orders_count"] == 1 and result["revenue_cents"] == 999999  # o5
    assert result["unique_customers"] == 1  # cA5
    assert result["jobs_completed"] == 1 and result["kwh_deployed"] == 5  # j10 -> o2: 5 kWh
    assert result["jobs_scheduled"] == 1  # j10 (08:00)
    assert result["labor_hours"] == Decimal("0.50")  # t2
    assert result["new_opportunities"] == 1  # op3
    assert result["lost_opportunities"] == 1 and result["won_opportunities"] == 0  # op9
    assert result["quote_win_rate"] == 0 and result["average_won_deal_cents"] is None
    assert result["warranty_claims"] == 1  # w5
    assert result["average_resolution_hours"] == Decimal(36)  # 06-09 23:59 to 06-11 11:59
    # Current state does not depend on the range.
    assert result["active_installations"] == EXPECTED_A["active_installations"]
    assert result["current_pipeline_cents"] == EXPECTED_A["current_pipeline_cents"]


def test_timezone_setting_decides_the_day(db: str) -> None:
    # In UTC, FIRST (06-09 14:01Z) falls before the range and AFTER (06-20 14:01Z) inside.
    utc = Settings(source_schema=SCHEMA, schema="dash_test", timezone="UTC")
    result = metrics(db, settings=utc)
    assert result["orders_count"] == 5  # o2, o3, o4, o6, o8; o1 is now out
    assert result["delivered_orders"] == 1  # o4
    assert result["pending_orders"] == 3  # o2, o6 shipped, o8
    assert result["unique_customers"] == 4  # cA1, cA2, cA3, cA5


def test_jit_setting_does_not_leak_into_the_session(db: str) -> None:
    with psycopg.connect(db) as conn:
        before = conn.execute("show jit").fetchone()
        conn.commit()
        naive_metrics(conn, SETTINGS, ORG_A, DATE_FROM, DATE_TO)
        assert conn.execute("show jit").fetchone() == before


def test_the_naive_query_is_planned_for_its_values_every_time(db: str) -> None:
    """Never a prepared statement on the connection (psycopg prepares from the sixth
    execution; the server's generic plan for it cannot use the day(ts) indexes), so the
    benchmark's reference never runs a plan made for other values."""
    with psycopg.connect(db) as conn:
        for days in range(8):
            naive_metrics(conn, SETTINGS, ORG_A, DATE_FROM, date(2024, 6, 10 + days))
        prepared = conn.execute("select name from pg_prepared_statements").fetchall()
    assert prepared == []
