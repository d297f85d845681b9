"""Issue 11 item 5: one tenant's odd product data never fails a refresh or a read.

Contract §3 ``capacity(product)`` (docs/METRICS.md §3 spells out the edge cases): a JSON number
counts as its value, a string holding a plain decimal number counts as that number, anything
else counts as 0; a value of absolute value 10^100 or more counts as 0, and so does a string
of more than 1000 characters or with an exponent of more than 4 digits.

One organization of the module's ``scratch_dashboard`` gets a product for every kind of
``capacity_kwh`` below, each with the capacity the rule gives it written out by hand here
(not derived from either SQL implementation). Before the fix, the refresh of mv_daily_energy
cast ``specifications->>'capacity_kwh'`` to numeric, so the first junk string failed it for
every tenant, and the live read of ``daily_energy`` raised ``InvalidTextRepresentation``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from dashquery import Client
from dashquery.dev.naive import naive_metrics
from dashquery.ops.dbt_runner import run_dbt
from tests.python.helpers import Dashboard, assert_matches_naive, business_today

# specifications (as JSON text) -> the capacity contract §3 gives it.
D = Decimal
CASES: list[tuple[str, Decimal]] = [
    # JSON numbers: their value
    ('{"capacity_kwh": 13.5}', D("13.5")),
    ('{"capacity_kwh": 5}', D(5)),
    ('{"capacity_kwh": -3.25}', D("-3.25")),
    ('{"capacity_kwh": 0}', D(0)),
    ('{"capacity_kwh": 1e99}', D("1e99")),  # below the 10^100 bound: counts
    ('{"capacity_kwh": 1e-300}', D("1e-300")),
    ('{"capacity_kwh": 1e100}', D(0)),  # at the bound: 0
    ('{"capacity_kwh": -1e100}', D(0)),
    ('{"capacity_kwh": 1e400}', D(0)),  # jsonb stores it; quantity x it could overflow
    ('{"capacity_kwh": 9e131071}', D(0)),  # the largest jsonb stores: x 2 overflows numeric
    # strings holding a plain decimal number: that number
    ('{"capacity_kwh": " 5 "}', D(5)),
    ('{"capacity_kwh": "13.5"}', D("13.5")),
    ('{"capacity_kwh": "1e1"}', D(10)),
    ('{"capacity_kwh": "1E1"}', D(10)),
    ('{"capacity_kwh": ".5"}', D("0.5")),
    ('{"capacity_kwh": "5."}', D(5)),
    ('{"capacity_kwh": "-2"}', D(-2)),
    ('{"capacity_kwh": "+7"}', D(7)),
    ('{"capacity_kwh": "  -.25e+2  "}', D(-25)),
    ('{"capacity_kwh": "2.5E-3"}', D("0.0025")),
    ('{"capacity_kwh": "1e0002"}', D(100)),  # 4 exponent digits
    ('{"capacity_kwh": "1e-9999"}', D("1e-9999")),  # 4 exponent digits, tiny: counts
    ('{"capacity_kwh": "1e99"}', D("1e99")),
    ('{"capacity_kwh": "0000000000000000000042"}', D(42)),
    (json.dumps({"capacity_kwh": "0" * 999 + "7"}), D(7)),  # exactly 1000 characters
    # anything else: 0
    ('{"watts": 5000}', D(0)),  # missing
    ('{"capacity_kwh": null}', D(0)),
    ('{"capacity_kwh": true}', D(0)),
    ('{"capacity_kwh": false}', D(0)),
    ('{"capacity_kwh": {}}', D(0)),
    ('{"capacity_kwh": {"value": 5}}', D(0)),
    ('{"capacity_kwh": [1]}', D(0)),
    ('{"capacity_kwh": []}', D(0)),
    ('{"capacity_kwh": "13.5 kWh"}', D(0)),
    ('{"capacity_kwh": ""}', D(0)),
    ('{"capacity_kwh": "   "}', D(0)),
    ('{"capacity_kwh": "NaN"}', D(0)),
    ('{"capacity_kwh": "nan"}', D(0)),
    ('{"capacity_kwh": "Infinity"}', D(0)),
    ('{"capacity_kwh": "-inf"}', D(0)),
    ('{"capacity_kwh": "1,5"}', D(0)),
    ('{"capacity_kwh": "1 000"}', D(0)),
    ('{"capacity_kwh": "0x1A"}', D(0)),
    ('{"capacity_kwh": "1e"}', D(0)),
    ('{"capacity_kwh": "e5"}', D(0)),
    ('{"capacity_kwh": "."}', D(0)),
    ('{"capacity_kwh": "-"}', D(0)),
    ('{"capacity_kwh": "--5"}', D(0)),
    ('{"capacity_kwh": "5e2.5"}', D(0)),
    ('{"capacity_kwh": "1e100"}', D(0)),  # at the bound
    ('{"capacity_kwh": "1e9999"}', D(0)),  # castable, beyond the bound
    ('{"capacity_kwh": "1e10000"}', D(0)),  # 5 exponent digits
    ('{"capacity_kwh": "1e999999"}', D(0)),  # would overflow numeric
    ('{"capacity_kwh": "1e-999999"}', D(0)),
    (json.dumps({"capacity_kwh": "0." + "1" * 20000}), D(0)),  # would overflow numeric
    (json.dumps({"capacity_kwh": "9" * 200000}), D(0)),  # would overflow numeric
    (json.dumps({"capacity_kwh": "0" * 1000 + "7"}), D(0)),  # 1001 characters
    (json.dumps({"capacity_kwh": " " * 1000 + "7"}), D(0)),  # 1001 characters
    ('{"capacity_kwh": "\\uff11\\uff12"}', D(0)),  # full-width digits one, two
    ('{"capacity_kwh": "\\u0663"}', D(0)),  # Arabic-Indic digit three
    ('{"capacity_kwh": "\\t5"}', D(0)),  # a tab is not a space
    ('{"capacity_kwh": "5\\n"}', D(0)),
    ('{"capacity_kwh": "\\u00a05"}', D(0)),  # no-break space
    ('{"capacity_kwh": "5\\u001c"}', D(0)),  # a control character (jsonb refuses \u0000)
    # specifications that are not an object
    ("[1, 2]", D(0)),
    ('"13.5"', D(0)),
    ("13.5", D(0)),
    ("null", D(0)),
]
FIRST_DAY = dt.date(2001, 3, 1)  # long before the generated data and the watermark
EXACT = Context(prec=250000, Emax=MAX_EMAX, Emin=MIN_EMIN)  # sums without rounding
Conn = psycopg.Connection[Any]


def insert(conn: Conn, dashboard: Dashboard, table: str, row: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier(dashboard.settings.source_schema, table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        ),
        list(row.values()),
    )


def local_noon(dashboard: Dashboard, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dashboard.settings.zone)


def add_job(
    conn: Conn,
    dashboard: Dashboard,
    org: uuid.UUID,
    customer: uuid.UUID,
    items: list[tuple[uuid.UUID, int]],
    completed_at: dt.datetime,
) -> None:
    """An order of (product, quantity) items and a job completing it at ``completed_at``."""
    order = uuid.uuid4()
    common = {"organization_id": org, "created_at": completed_at}
    insert(conn, dashboard, "orders", {
        "id": order, "customer_id": customer, "status": "delivered", "total_cents": 1,
        "updated_at": completed_at, **common,
    })  # fmt: skip
    for product, quantity in items:
        insert(conn, dashboard, "order_items", {
            "id": uuid.uuid4(), "order_id": order, "product_id": product,
            "quantity": quantity, "unit_price_cents": 1, "line_total_cents": quantity, **common,
        })  # fmt: skip
    insert(conn, dashboard, "jobs", {
        "id": uuid.uuid4(), "order_id": order, "customer_id": customer, "status": "completed",
        "scheduled_at": completed_at, "completed_at": completed_at, "estimated_hours": 1,
        "updated_at": completed_at, **common,
    })  # fmt: skip


def dashboard_rows(conn: Conn, dashboard: Dashboard, query: str, *args: Any) -> list[Any]:
    schema = sql.Identifier(dashboard.settings.schema)
    return conn.execute(sql.SQL(query).format(schema=schema), args).fetchall()


@pytest.fixture(scope="module")
def odd_products(scratch_dashboard: Dashboard) -> dict[str, Any]:
    """Every case as a product of the first organization, then a real refresh.

    Product i is ordered (quantity i + 1) by a job completed on FIRST_DAY + i, so each day of
    mv_daily_energy checks one case; one more job orders all of them, once completed on the
    day after the last case and once now (today is always read live from daily_energy).
    """
    dashboard = scratch_dashboard
    org = dashboard.organization_ids[0]
    with dashboard.connect() as conn:
        (customer,) = conn.execute(
            sql.SQL("select id from {} where organization_id = %s limit 1").format(
                sql.Identifier(dashboard.settings.source_schema, "customers")
            ),
            (org,),
        ).fetchone() or (None,)
        assert customer is not None
        (before,) = dashboard_rows(
            conn, dashboard,
            "select watermark from {schema}.dashquery_watermarks"
            " where view_name = 'mv_daily_energy'",
        )[0]  # fmt: skip
        today = business_today(dashboard.settings)
        today_before = naive_metrics(conn, dashboard.settings, org, today, today)["kwh_deployed"]
        products = []
        for i, (spec, _) in enumerate(CASES):
            product = uuid.uuid4()
            insert(conn, dashboard, "products", {
                "id": product, "organization_id": org, "name": f"odd {i}",
                # the JSON text as written (json.loads would turn 1e400 into a float inf)
                "specifications": Jsonb(spec, dumps=str),
                "unit_price_cents": 1, "created_at": local_noon(dashboard, FIRST_DAY),
            })  # fmt: skip
            products.append(product)
            day = FIRST_DAY + dt.timedelta(days=i)
            add_job(conn, dashboard, org, customer, [(product, i + 1)], local_noon(dashboard, day))
        everything = [(product, i + 1) for i, product in enumerate(products)]
        all_day = FIRST_DAY + dt.timedelta(days=len(CASES))
        add_job(conn, dashboard, org, customer, everything, local_noon(dashboard, all_day))
        add_job(conn, dashboard, org, customer, everything, dt.datetime.now(dt.UTC))
    # Every 15-minute view, as the scheduler runs them; raises DbtError if any fails.
    run_dbt(["run", "--select", "tag:15min"], dashboard.settings)
    return {
        "org": org, "all_day": all_day, "watermark_before": before,
        "today": today, "today_before": today_before,
    }  # fmt: skip


def expected_total() -> Decimal:
    """Sum of quantity (i + 1) x capacity over the cases, without rounding."""
    total = Decimal(0)
    for i, (_, kwh) in enumerate(CASES):
        total = EXACT.add(total, EXACT.multiply(Decimal(i + 1), kwh))
    return total


def test_refresh_succeeds_and_is_recorded(
    scratch_dashboard: Dashboard, odd_products: dict[str, Any]
) -> None:
    with scratch_dashboard.connect() as conn:
        [(watermark, refreshed_at, failed_at, error)] = dashboard_rows(
            conn, scratch_dashboard,
            "select watermark, refreshed_at, last_failed_at, last_error"
            " from {schema}.dashquery_watermarks where view_name = 'mv_daily_energy'",
        )  # fmt: skip
        [(status, run_error)] = dashboard_rows(
            conn, scratch_dashboard,
            "select status, error from {schema}.dashquery_refresh_runs"
            " where view_name = 'mv_daily_energy' order by run_id desc limit 1",
        )  # fmt: skip
    assert watermark > odd_products["watermark_before"]
    assert failed_at is None or failed_at < refreshed_at, error
    assert (status, run_error) == ("success", None)


def test_materialized_days_hold_each_cases_capacity(
    scratch_dashboard: Dashboard, odd_products: dict[str, Any]
) -> None:
    """mv_daily_energy, one case per day: quantity (i + 1) x the capacity written above."""
    last = FIRST_DAY + dt.timedelta(days=len(CASES) - 1)
    with scratch_dashboard.connect() as conn:
        query = (
            "select business_day, kwh_deployed from {schema}.mv_daily_energy"
            " where organization_id = %s and business_day between %s and %s"
        )
        rows = dict(
            dashboard_rows(conn, scratch_dashboard, query, odd_products["org"], FIRST_DAY, last)
        )
    wrong = {
        spec[:80]: (rows.get(FIRST_DAY + dt.timedelta(days=i)), (i + 1) * kwh)
        for i, (spec, kwh) in enumerate(CASES)
        if rows.get(FIRST_DAY + dt.timedelta(days=i)) != EXACT.multiply(Decimal(i + 1), kwh)
    }
    assert not wrong, f"(materialized, expected) differ: {wrong}"


def test_get_metrics_equals_the_rule_and_the_naive_query(
    scratch_dashboard: Dashboard, odd_products: dict[str, Any]
) -> None:
    org, all_day = odd_products["org"], odd_products["all_day"]
    today = odd_products["today"]
    total = expected_total()
    settings = scratch_dashboard.settings
    with Client(settings=settings, cache=False) as client, scratch_dashboard.connect() as conn:
        # the day of the job ordering every product: materialized
        result = client.get_metrics(org, all_day, all_day)
        assert result.metrics["kwh_deployed"] == total
        naive = naive_metrics(conn, settings, org, all_day, all_day)
        assert naive["kwh_deployed"] == total
        energy = result.freshness["energy"]
        assert energy.live_reason is None and energy.watermark is not None
        assert energy.first_live_day is None  # the whole day came from mv_daily_energy
        # every case day and the all-products day: materialized, equal to the sum by hand
        result = client.get_metrics(org, FIRST_DAY, all_day)
        assert result.metrics["kwh_deployed"] == EXACT.add(total, total)
        assert_matches_naive(conn, scratch_dashboard.settings, result)
        # today: read live from daily_energy (the job completed now orders every product)
        result = client.get_metrics(org, today, today)
        assert result.freshness["energy"].first_live_day == today
        assert result.metrics["kwh_deployed"] == EXACT.add(odd_products["today_before"], total)
        assert_matches_naive(conn, scratch_dashboard.settings, result)
        # ten years of this organization, and JSON stays finite
        result = client.get_metrics(org, today - dt.timedelta(days=3659), today)
        assert_matches_naive(conn, scratch_dashboard.settings, result)
        json.dumps(result.to_dict(), allow_nan=False)


def test_other_organizations_are_still_materialized(
    scratch_dashboard: Dashboard, odd_products: dict[str, Any]
) -> None:
    today = business_today(scratch_dashboard.settings)
    others = [o for o in scratch_dashboard.organization_ids if o != odd_products["org"]]
    assert others
    settings = scratch_dashboard.settings
    with Client(settings=settings, cache=False) as client, scratch_dashboard.connect() as conn:
        for org in others:
            result = client.get_metrics(org, today - dt.timedelta(days=364), today)
            assert result.freshness["energy"].live_reason is None
            assert result.freshness["energy"].watermark is not None
            assert_matches_naive(conn, scratch_dashboard.settings, result)


def test_the_daily_view_reads_every_row(scratch_dashboard: Dashboard) -> None:
    """The live arm's view over every tenant and day, and the naive query over all history."""
    with scratch_dashboard.connect() as conn:
        [(days, _)] = dashboard_rows(
            conn, scratch_dashboard,
            "select count(*), sum(kwh_deployed) from {schema}.daily_energy",
        )  # fmt: skip
        assert days > 0
        for org in scratch_dashboard.organization_ids:
            naive_metrics(conn, scratch_dashboard.settings, org, dt.date(1970, 1, 1),
                          dt.date(2100, 1, 1))  # fmt: skip
