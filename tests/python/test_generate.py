"""The data generator: invariants of its rows, checked with plain SQL on a real PostgreSQL.

The small data set (2 organizations, 60 days, 0.2 x Year 3) ends at a fixed moment, in
Australia/Sydney winter (UTC+10), so its expected volumes and business dates are known.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dashquery.cli import cli
from dashquery.dev.generate import GenerateReport, generate

SCHEMA = "gen_src"
TIMEZONE = "Australia/Sydney"
END = dt.datetime(2024, 6, 14, 4, 30, tzinfo=dt.UTC)  # 14:30 on 14 June in Sydney
TABLES = (
    "organizations", "customers", "products", "orders", "order_items", "opportunities", "jobs",
    "job_time_entries", "warranty_claims", "activities", "targets",
)  # fmt: skip
SOFT_DELETED = ("customers", "orders", "opportunities", "jobs", "warranty_claims")


@dataclass(frozen=True)
class Seeded:
    conn: psycopg.Connection[Any]
    report: GenerateReport

    def one(self, query: str, *params: object) -> Any:
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return row[0] if len(row) == 1 else row

    def all(self, query: str, *params: object) -> list[Any]:
        return [r[0] if len(r) == 1 else r for r in self.conn.execute(query, params).fetchall()]


def small(conninfo: str, *, schema: str = SCHEMA, seed: int = 7) -> GenerateReport:
    return generate(
        conninfo,
        source_schema=schema,
        timezone=TIMEZONE,
        orgs=2,
        seed=seed,
        days=60,
        end=END,
        scale=0.2,
        progress=False,
    )


@pytest.fixture
def seeded(fresh_db: str) -> Iterator[Seeded]:
    report = small(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(sql.SQL("set search_path to {}").format(sql.Identifier(SCHEMA)))
        conn.execute("set timezone to 'UTC'")
        yield Seeded(conn, report)


def test_row_counts_match_the_report_and_year3_rates(seeded: Seeded) -> None:
    report = seeded.report
    for table in TABLES:
        assert report.rows[table] == seeded.one(f"select count(*) from {table}") > 0, table
    assert report.total_rows == sum(report.rows.values())
    assert report.seconds > 0 and report.rows_per_second > 0
    assert set(report.organization_ids) == set(seeded.all("select id from organizations"))
    assert seeded.all("select name from organizations order by name") == ["Org 001", "Org 002"]
    # Per organization: 0.2 x (30 orders, 20 opportunities, 15 jobs, 5 claims a day) x 60 days.
    for table, per_day in (("orders", 30), ("opportunities", 20), ("jobs", 15)):
        for count in seeded.all(f"select count(*) from {table} group by organization_id"):
            assert 0.7 * per_day * 12 < count < 1.3 * per_day * 12, table
    for count in seeded.all("select count(*) from warranty_claims group by organization_id"):
        assert 30 < count < 90
    assert seeded.all("select count(*) from customers group by organization_id") == [400, 400]
    assert seeded.all("select count(*) from products group by organization_id") == [40, 40]
    items_per_order = seeded.one(
        "select count(*)::float / count(distinct order_id) from order_items"
    )
    assert 2.5 < items_per_order < 4
    assert seeded.one("select min(quantity), max(quantity) from order_items")[0] >= 1
    assert seeded.all(
        "select min(n), max(n) from (select count(*) n from order_items group by order_id) c"
    ) == [(1, 6)]
    assert 2_500 < seeded.one("select count(*) from activities") < 4_000  # 2 x 100k x .2 x 60/730
    months = seeded.all("select distinct period_start from targets order by 1")
    assert months == [dt.date(2024, 4, 1), dt.date(2024, 5, 1), dt.date(2024, 6, 1)]


def test_order_total_is_the_sum_of_its_line_totals(seeded: Seeded) -> None:
    assert seeded.one("select count(*) from order_items where line_total_cents"
                      " <> quantity * unit_price_cents") == 0  # fmt: skip
    mismatched = seeded.one(
        """select count(*) from orders o
           where o.total_cents <> (select coalesce(sum(i.line_total_cents), -1)
                                   from order_items i where i.order_id = o.id)"""
    )
    assert mismatched == 0


REFERENCES = (  # child, column, parent, nullable
    ("customers", "organization_id", "organizations", False),
    ("products", "organization_id", "organizations", False),
    ("orders", "customer_id", "customers", False),
    ("order_items", "order_id", "orders", False),
    ("order_items", "product_id", "products", False),
    ("opportunities", "customer_id", "customers", False),
    ("jobs", "order_id", "orders", True),
    ("jobs", "customer_id", "customers", False),
    ("job_time_entries", "job_id", "jobs", False),
    ("warranty_claims", "customer_id", "customers", False),
    ("warranty_claims", "product_id", "products", True),
    ("activities", "organization_id", "organizations", False),
    ("targets", "organization_id", "organizations", False),
)


def test_references_exist_within_the_same_organization(seeded: Seeded) -> None:
    # The loader may skip FK triggers (superuser COPY), so this is the check that matters.
    for child, column, parent, nullable in REFERENCES:
        parent_org = "p.id" if parent == "organizations" else "p.organization_id"
        broken = seeded.one(
            f"""select count(*) from {child} c left join {parent} p on p.id = c.{column}
                where c.{column} is not null
                  and (p.id is null or {parent_org} <> c.organization_id)"""
        )
        assert broken == 0, (child, column)
        nulls = seeded.one(f"select count(*) from {child} where {column} is null")
        assert (nulls > 0) == nullable, (child, column)
    # A job with an order belongs to the order's customer.
    assert seeded.one(
        "select count(*) from jobs j join orders o on o.id = j.order_id"
        " where o.customer_id <> j.customer_id"
    ) == 0  # fmt: skip


def test_activities_point_at_entities_of_their_organization(seeded: Seeded) -> None:
    tables = {
        "order": "orders",
        "opportunity": "opportunities",
        "job": "jobs",
        "customer": "customers",
        "warranty_claim": "warranty_claims",
    }
    assert set(seeded.all("select distinct entity_type from activities")) == set(tables)
    for entity_type, table in tables.items():
        dangling = seeded.one(
            f"""select count(*) from activities a left join {table} e on e.id = a.entity_id
                where a.entity_type = %s
                  and (e.id is null or e.organization_id <> a.organization_id)""",
            entity_type,
        )
        assert dangling == 0, entity_type


def test_statuses_are_the_contracts_and_lifecycles_hold(seeded: Seeded) -> None:
    order_statuses = set(seeded.all("select distinct status from orders"))
    assert {"delivered", "cancelled"} <= order_statuses
    assert order_statuses & {"draft", "confirmed", "picking", "picked", "shipped"}
    assert order_statuses <= {
        "draft", "confirmed", "picking", "picked", "shipped", "delivered", "cancelled",
    }  # fmt: skip
    assert set(seeded.all("select distinct stage from opportunities")) == {
        "new", "qualified", "proposal", "negotiation", "won", "lost",
    }  # fmt: skip
    assert set(seeded.all("select distinct status from jobs")) == {
        "scheduled", "in_progress", "completed", "cancelled",
    }  # fmt: skip
    assert set(seeded.all("select distinct status from warranty_claims")) == {
        "pending", "approved", "rejected", "resolved",
    }  # fmt: skip
    assert set(seeded.all("select distinct claim_type from warranty_claims")) == {
        "defect", "damage", "performance",
    }  # fmt: skip
    assert set(seeded.all("select distinct status from customers")) == {
        "active", "inactive", "prospect",
    }  # fmt: skip

    assert seeded.one(
        """select count(*) from opportunities
           where (stage in ('won', 'lost')) <> (closed_at is not null) or closed_at < created_at
              or probability not between 0 and 100"""
    ) == 0  # fmt: skip
    longest = seeded.one("select max(closed_at - created_at) from opportunities")
    assert longest > dt.timedelta(days=21)  # some close weeks to months later
    assert seeded.one("select count(*) from opportunities where expected_close_date is null") > 0
    assert seeded.one(
        """select count(*) from jobs where (status = 'completed') <> (completed_at is not null)
              or completed_at <= scheduled_at"""
    ) == 0  # fmt: skip
    assert seeded.one(
        """select count(*) from warranty_claims
           where (status in ('resolved', 'rejected')) <> (resolved_at is not null)
              or resolved_at <= created_at"""
    ) == 0  # fmt: skip
    assert seeded.one(
        "select count(*) from job_time_entries t join jobs j on j.id = t.job_id"
        " where t.worked_at < j.scheduled_at or j.status not in ('completed', 'in_progress')"
    ) == 0  # fmt: skip
    assert seeded.one("select count(*) from jobs where estimated_hours <= 0") == 0


def test_soft_deletes_missing_orders_and_missing_capacities_exist(seeded: Seeded) -> None:
    for table in SOFT_DELETED:
        share = seeded.one(f"select avg((deleted_at is not null)::int) from {table}")
        assert 0 < share < 0.06, table
        assert seeded.one(f"select count(*) from {table} where deleted_at < created_at") == 0
    assert 0.1 < seeded.one("select avg((order_id is null)::int) from jobs") < 0.3
    assert seeded.one("select count(*) from warranty_claims where product_id is null") > 0
    assert seeded.one("select count(*) from products where specifications ? 'capacity_kwh'") > 0
    assert seeded.one("select count(*) from products where not specifications ? 'capacity_kwh'") > 0
    capacities = seeded.all(
        "select (specifications->>'capacity_kwh')::numeric from products"
        " where specifications ? 'capacity_kwh'"
    )
    assert all(c > 0 for c in capacities)
    assert any(c != int(c) for c in capacities)  # some fractional, like 13.5


def test_timestamps_straddle_local_midnight_and_stop_at_end(seeded: Seeded) -> None:
    local = "(created_at at time zone %s)"
    minutes = f"extract(hour from {local}) * 60 + extract(minute from {local})"
    near_midnight = seeded.one(
        f"select avg(({minutes} < 10 or {minutes} >= 1430)::int) from orders",
        TIMEZONE, TIMEZONE, TIMEZONE, TIMEZONE,
    )  # fmt: skip
    assert 0.02 < near_midnight < 0.12
    # Rows either side of local midnight fall on different UTC and business dates here.
    for table in ("orders", "opportunities", "warranty_claims", "jobs"):
        assert seeded.one(
            f"""select count(*) from {table}
                where ({local})::date <> (created_at at time zone 'UTC')::date""",
            TIMEZONE,
        ) > 0, table  # fmt: skip
    assert seeded.one(
        "select count(*) from jobs where status = 'completed' and"
        " abs(extract(epoch from (completed_at at time zone %s)::time)) < 600",
        TIMEZONE,
    ) > 0  # fmt: skip
    today = END.astimezone(dt.timezone(dt.timedelta(hours=10))).date()
    assert seeded.one(f"select count(*) from orders where {local}::date = %s", TIMEZONE, today) > 0
    columns = {
        "orders": ("created_at", "updated_at", "deleted_at"),
        "order_items": ("created_at",),
        "opportunities": ("created_at", "updated_at", "closed_at", "deleted_at"),
        "jobs": ("created_at", "updated_at", "completed_at", "deleted_at"),
        "job_time_entries": ("worked_at", "created_at"),
        "warranty_claims": ("created_at", "resolved_at", "updated_at", "deleted_at"),
        "customers": ("created_at", "updated_at", "deleted_at"),
        "activities": ("created_at",),
    }
    for table, names in columns.items():
        latest = seeded.one(f"select max(greatest({', '.join(names)})) from {table}")
        assert latest <= END, table
        assert seeded.one(f"select count(*) from {table} where updated_at < created_at"
                          if "updated_at" in names else "select 0") == 0  # fmt: skip
    future = seeded.one("select count(*) from jobs where scheduled_at > %s", END)
    assert future > 0
    assert seeded.one(
        "select count(*) from jobs where scheduled_at > %s and status not in"
        " ('scheduled', 'cancelled')",
        END,
    ) == 0  # fmt: skip


def _fingerprint(conninfo: str, schema: str) -> dict[str, str]:
    with psycopg.connect(conninfo) as conn:
        return {
            table: conn.execute(
                sql.SQL("select md5(string_agg(t::text, E'\\n' order by t::text)) from {} t")
                .format(sql.Identifier(schema, table))
            ).fetchone()[0]  # type: ignore[index]
            for table in TABLES
        }  # fmt: skip


def test_same_seed_and_end_give_identical_rows(fresh_db: str) -> None:
    first, second = small(fresh_db, schema="run_a"), small(fresh_db, schema="run_b")
    other = small(fresh_db, schema="run_c", seed=8)
    assert first.rows == second.rows
    assert first.organization_ids == second.organization_ids
    assert _fingerprint(fresh_db, "run_a") == _fingerprint(fresh_db, "run_b")
    different = _fingerprint(fresh_db, "run_c")
    assert set(other.organization_ids).isdisjoint(first.organization_ids)
    assert all(different[t] != _fingerprint(fresh_db, "run_a")[t] for t in ("orders", "jobs"))


def test_default_end_is_now(fresh_db: str) -> None:
    before = dt.datetime.now(dt.UTC)
    generate(fresh_db, source_schema="now_src", timezone="UTC", orgs=1, days=3, scale=0.2,
             progress=False)  # fmt: skip
    with psycopg.connect(fresh_db) as conn:
        count, earliest, latest = conn.execute(
            "select count(*), min(created_at), max(created_at) from now_src.orders"
        ).fetchone()  # type: ignore[misc]
    assert count > 0
    assert before - dt.timedelta(days=3) <= earliest <= latest <= dt.datetime.now(dt.UTC)


def _pg_env(conninfo: str) -> dict[str, str]:
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
             "password": "PGPASSWORD"}  # fmt: skip
    return {names[k]: str(v) for k, v in conninfo_to_dict(conninfo).items() if k in names}


def test_cli_refuses_existing_tables_without_replace(fresh_db: str) -> None:
    runner = CliRunner()
    env = {**_pg_env(fresh_db), "DASHQUERY_SOURCE_SCHEMA": "cli_src", "DASHQUERY_TIMEZONE": "UTC"}
    args = ["seed", "--days", "5", "--scale", "0.05", "--seed", "3"]

    created = runner.invoke(cli, args, env=env)
    assert created.exit_code == 0, created.output
    assert "rows/s" in created.output + created.stderr
    refused = runner.invoke(cli, [*args, "--quiet"], env=env)
    assert refused.exit_code != 0
    assert "--replace" in refused.output + refused.stderr
    replaced = runner.invoke(cli, [*args, "--replace", "--orgs", "2", "--quiet"], env=env)
    assert replaced.exit_code == 0, replaced.output
    with psycopg.connect(fresh_db) as conn:
        orgs = conn.execute("select count(*) from cli_src.organizations").fetchone()
    assert orgs == (2,)


def test_bad_arguments_are_config_errors(fresh_db: str) -> None:
    with pytest.raises(ValueError, match="volume"):
        generate(fresh_db, source_schema="x", timezone="UTC", volume="1000x", progress=False)
    with pytest.raises(ValueError, match="DASHQUERY_TIMEZONE"):
        generate(fresh_db, source_schema="x", timezone="Mars/Base", progress=False)
    # Any name PostgreSQL can store is a schema name ("a;b" too): only empty, NUL or too long
    # are refused.
    with pytest.raises(ValueError, match="source_schema"):
        generate(fresh_db, source_schema="a\0b", timezone="UTC", progress=False)
    with pytest.raises(ValueError, match="must be positive"):
        generate(fresh_db, source_schema="x", timezone="UTC", days=0, progress=False)
    with pytest.raises(ValueError, match="must be positive"):
        generate(fresh_db, source_schema="x", timezone="UTC", scales=(1.0, 0.0), progress=False)
    with pytest.raises(ValueError, match="must be positive"):
        generate(fresh_db, source_schema="x", timezone="UTC", scales=(), progress=False)


@pytest.mark.slow
def test_year3_volume_for_one_organization(fresh_db: str) -> None:
    report = generate(fresh_db, source_schema="year3", timezone=TIMEZONE, volume="year3",
                      seed=1, end=END, progress=False)  # fmt: skip
    rows = report.rows
    assert len(report.organization_ids) == 1
    assert 18_000 < rows["orders"] < 26_000  # ~30 a day for 730 days
    assert 2.5 * rows["orders"] < rows["order_items"] < 4 * rows["orders"]
    assert 12_000 < rows["opportunities"] < 17_500
    assert 9_000 < rows["jobs"] < 13_000
    assert rows["jobs"] < rows["job_time_entries"] < 4 * rows["jobs"]
    assert 3_000 < rows["warranty_claims"] < 4_500
    assert (rows["customers"], rows["products"], rows["activities"]) == (2_000, 40, 100_000)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from year3.order_items").fetchone() == (
            rows["order_items"],
        )
    print(report.summary())
    assert isinstance(report.organization_ids[0], uuid.UUID)


def _business_days(conn: psycopg.Connection[Any], schema: str, org: uuid.UUID) -> tuple[Any, ...]:
    day = "(created_at at time zone %s)::date"
    row = conn.execute(
        sql.SQL(
            f"select min({day}), max({day}), count(distinct {day}) from {{}}"
            " where organization_id = %s"
        ).format(sql.Identifier(schema, "orders")),
        (TIMEZONE, TIMEZONE, TIMEZONE, org),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_history_length_spans_the_requested_days(fresh_db: str) -> None:
    """Ten years of history: the rows' business dates cover 3,650 days ending at END."""
    report = generate(fresh_db, source_schema="ten", timezone=TIMEZONE, orgs=1, days=3650,
                      end=END, scale=0.05, seed=2, progress=False)  # fmt: skip
    assert report.days == 3650 and report.scales == (0.05,)
    today = END.astimezone(dt.timezone(dt.timedelta(hours=10))).date()
    first = today - dt.timedelta(days=3649)
    with psycopg.connect(fresh_db) as conn:
        earliest, latest, distinct = _business_days(conn, "ten", report.organization_ids[0])
        # ~1.5 orders a day: a day without any is common, a week without any is not.
        assert first <= earliest <= first + dt.timedelta(days=7)
        assert today - dt.timedelta(days=7) <= latest <= today
        assert distinct > 0.6 * 3650
        months = conn.execute(
            "select count(distinct date_trunc('month', period_start)) from ten.targets"
        ).fetchone()
    assert months is not None and 120 <= months[0] <= 122
    assert 4_000 < report.rows["orders"] < 7_000  # 30 x 0.05 a day for ten years


def test_large_tenant_is_one_organization_made_in_parts(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tenant at 100x a small one, generated in parts under a single organization id."""
    from dashquery.dev import generate as generate_module

    monkeypatch.setattr(generate_module, "PART_SCALE", 0.3)  # 1.0 -> 4 parts of 0.25
    scales = generate_module.large_tenant_scales(3, 1.0, 0.01)
    assert scales == (1.0, 0.01, 0.01)
    report = generate(fresh_db, source_schema="big", timezone=TIMEZONE, scales=scales, days=60,
                      end=END, seed=4, progress=False)  # fmt: skip
    assert len(report.organization_ids) == 3 and report.scales == scales
    large, *small = report.organization_ids
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set search_path to big")
        orders = dict(conn.execute("select organization_id, count(*) from orders group by 1"))
        products = dict(conn.execute("select organization_id, count(*) from products group by 1"))
        assert conn.execute("select count(*) from organizations").fetchone() == (3,)
        for table in TABLES:  # no row of a part outside the three organizations
            assert conn.execute(
                f"select count(*) from {table} where"
                f" {'id' if table == 'organizations' else 'organization_id'} <> all(%s)",
                (list(report.organization_ids),),
            ).fetchone() == (0,), table  # fmt: skip
        targets = conn.execute(
            "select count(*), count(distinct (metric, period_start)) from targets"
            " where organization_id = %s",
            (large,),
        ).fetchone()
        for child, column, parent, _ in REFERENCES:
            parent_org = "p.id" if parent == "organizations" else "p.organization_id"
            assert conn.execute(
                f"select count(*) from {child} c join {parent} p on p.id = c.{column}"
                f" where {parent_org} <> c.organization_id"
            ).fetchone() == (0,), (child, column)  # fmt: skip
        earliest, latest, _ = _business_days(conn, "big", large)
    # Four parts of 40 products each; the small ones are one part.
    assert products[large] == 160 and all(products[org] == 40 for org in small)
    for org in small:
        assert 60 < orders[large] / orders[org] < 160, orders  # ~100x, a small one has ~18
    assert 0.75 * 30 * 60 < orders[large] < 1.25 * 30 * 60
    assert targets is not None and targets[0] == targets[1]  # one set for the whole tenant
    assert latest - earliest >= dt.timedelta(days=58)


def test_seed_cli_years_and_large_tenant(fresh_db: str) -> None:
    env = {**_pg_env(fresh_db), "DASHQUERY_SOURCE_SCHEMA": "yrs", "DASHQUERY_TIMEZONE": "UTC"}
    args = ["seed", "--years", "2", "--orgs", "3", "--scale", "0.02", "--large-tenant", "0.4",
            "--quiet"]  # fmt: skip
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    with psycopg.connect(fresh_db) as conn:
        counts = sorted(
            n for (n,) in conn.execute("select count(*) from yrs.orders group by organization_id")
        )
        span = conn.execute(
            "select max(created_at)::date - min(created_at)::date from yrs.orders"
        ).fetchone()
    assert len(counts) == 3 and all(10 < counts[-1] / n < 30 for n in counts[:2]), counts
    assert span is not None and 720 <= span[0] <= 730
