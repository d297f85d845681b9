"""Assertions shared by the read-path tests: the fast path against the contract's oracle."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dashquery.catalog import METRIC_KEYS
from dashquery.config import Settings
from dashquery.dev.generate import generate
from dashquery.dev.naive import naive_metrics
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import PROJECT_DIR, DbtResult, run_dbt
from dashquery.result import DashboardMetrics


def business_today(settings: Settings) -> dt.date:
    return dt.datetime.now(settings.zone).date()


def watermark_day(watermark: str | dt.datetime, settings: Settings) -> dt.date:
    """The business day a §4 watermark falls on: a range's first live day (§2) when the range
    starts before it. Not "today": the suite builds once, and a build just before midnight in
    the business zone with a read just after it puts the watermark on yesterday."""
    if isinstance(watermark, str):
        watermark = dt.datetime.fromisoformat(watermark)
    return watermark.astimezone(settings.zone).date()


def assert_matches_naive(
    conn: psycopg.Connection[Any],
    settings: Settings,
    result: DashboardMetrics,
) -> None:
    """Every §3 value equals the naive query's, exactly (ints and Decimals compare exactly)."""
    expected = naive_metrics(
        conn, settings, result.organization_id, result.date_from, result.date_to
    )
    assert set(expected) == set(METRIC_KEYS)
    differences = {
        key: (result.metrics[key], expected[key])
        for key in METRIC_KEYS
        if result.metrics[key] != expected[key]
    }
    assert not differences, (
        f"{result.organization_id} {result.date_from}..{result.date_to}: "
        f"(hybrid, naive) differ: {differences}"
    )


def ranges_to_check(today: dt.date) -> list[tuple[dt.date, dt.date]]:
    """1 day to 10 years; ending today, in the past and in the future."""
    day = dt.timedelta(days=1)
    return [
        (today, today),
        (today - 6 * day, today),
        (today - 29 * day, today),
        (today - 89 * day, today),
        (today - 364 * day, today),
        (today - 729 * day, today),
        (today - 3659 * day, today),
        (today - 400 * day, today - 200 * day),
        (today - 1 * day, today - 1 * day),
        (today - 10 * day, today + 30 * day),
        (today + 1 * day, today + 90 * day),
        (dt.date(2000, 1, 1), dt.date(2000, 12, 31)),
    ]


@dataclass(frozen=True)
class Dashboard:
    """A database with generated application data and the dbt project built on it."""

    settings: Settings
    organization_ids: tuple[uuid.UUID, ...]
    empty_organization_id: uuid.UUID

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.conninfo, autocommit=True)


# The generated data of the modules that need no data set of their own: they all copy one
# template (build_dashboard), so each test process generates and builds it once.
SCRATCH_SEED = 23
# (stack folder, seed, orgs) -> (template database, organization ids, empty organization id)
_TEMPLATES: dict[tuple[Path, int, int], tuple[str, tuple[uuid.UUID, ...], uuid.UUID]] = {}


def _dashboard_settings(stack: LocalStack, redis_url: str, database: str) -> Settings:
    return Settings(
        conninfo=stack.conninfo(database),
        source_schema="ops_src",
        schema="dash_views",
        redis_url=redis_url,
    )


def _build_template(
    stack: LocalStack, redis_url: str, seed: int, orgs: int
) -> tuple[str, tuple[uuid.UUID, ...], uuid.UUID]:
    """Generate data into a new database and `dbt build` it: the template of every copy."""
    name = f"tmpl_{seed}_{orgs}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    settings = _dashboard_settings(stack, redis_url, name)
    report = generate(
        settings.conninfo,
        source_schema=settings.source_schema,
        timezone=settings.timezone,
        orgs=orgs,
        seed=seed,
        days=800,
        scale=0.2,
        progress=False,
    )
    empty = uuid.uuid4()
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("insert into {}.organizations values (%s, 'No data yet', now(), now())").format(
                sql.Identifier(settings.source_schema)
            ),
            (empty,),
        )
    run_dbt(["build"], settings)
    return name, tuple(report.organization_ids), empty


def build_dashboard(stack: LocalStack, redis_url: str, *, seed: int, orgs: int) -> Dashboard:
    """A new database with generated data and the dbt project built on it.

    The first call for a (cluster, seed, orgs) generates and `dbt build`s a template database;
    every call gets its own copy of it (``CREATE DATABASE ... TEMPLATE``, a file copy of a
    few MB), so modules that write to their dashboard never share one, and the suite pays
    for one generation and build per data set instead of one per module. The schemas are
    deliberately not the defaults (``app``/``dashboard``), so anything that hard-codes them
    fails here.
    """
    key = (stack.root, seed, orgs)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _build_template(stack, redis_url, seed, orgs)
    template, organization_ids, empty = _TEMPLATES[key]
    name = f"dash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        create = sql.SQL("create database {} template {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template)))
    settings = _dashboard_settings(stack, redis_url, name)
    return Dashboard(settings, (*organization_ids, empty), empty)


def refreshed(dashboard: Dashboard) -> Dashboard:
    """The dashboard after a ``dbt run`` now. A copy carries its template's watermarks, which
    a status check rightly calls overdue once they are older than twice a view's cadence
    (5 minutes for current_state): tests of status start from a deploy of their own."""
    run_dbt(["run"], dashboard.settings)
    return dashboard


def edited_project(folder: Path, model: str, old: str, new: str) -> Path:
    """A copy of the dbt project (its dbt files only, never .stack/, .venv/ or target/) in
    ``folder``/project, with ``old`` replaced by ``new`` once in models/daily/<model>.sql."""
    project = folder / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("macros", "models", "seeds", "data-tests", "analyses"):
        if (PROJECT_DIR / name).exists():
            shutil.copytree(PROJECT_DIR / name, project / name, ignore=ignore)
    for name in ("dbt_project.yml", "selectors.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    path = project / "models" / "daily" / f"{model}.sql"
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: update the test's edit"
    path.write_text(text.replace(old, new, 1))
    return project


_LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment variables (PG* and DASHQUERY_*, contract §1) that make a command read
    these settings: what the CLI tests hand to CliRunner or a subprocess."""
    env = {
        _LIBPQ_ENV[key]: str(value)
        for key, value in conninfo_to_dict(settings.conninfo).items()
        if key in _LIBPQ_ENV
    }
    env.update(
        DASHQUERY_SOURCE_SCHEMA=settings.source_schema,
        DASHQUERY_SCHEMA=settings.schema,
        DASHQUERY_TIMEZONE=settings.timezone,
        DASHQUERY_REDIS_URL=settings.redis_url,
    )
    return env


def dbt_run(dashboard: Dashboard, select: str, *extra: str, **dbt_vars: Any) -> DbtResult:
    """``dbt run --select <select> [extra] [--vars <dbt_vars>]`` on the dashboard's database."""
    args = ["run", "--select", select, *extra]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    return run_dbt(args, dashboard.settings)


def relation_exists(conn: psycopg.Connection[Any], dashboard: Dashboard, name: str) -> bool:
    row = conn.execute(
        "select to_regclass(format('%%I.%%I', %s::text, %s::text)) is not null",
        (dashboard.settings.schema, name),
    ).fetchone()
    return bool(row and row[0])


def edge_ranges(today: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Ranges cut at and beside month and year edges, over the data's whole history."""
    day = dt.timedelta(days=1)
    ranges = []
    for year in (today.year - 2, today.year - 1):
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
        ranges += [
            (first, last),  # exactly one year
            (first + day, last),  # a year less its first day
            (first, last - day),
            (last, last + day),  # across new year
            (dt.date(year, 2, 1), dt.date(year, 2, 28)),  # one whole month
            (dt.date(year, 1, 31), dt.date(year, 3, 1)),  # one whole month and two days
            (dt.date(year, 3, 15), dt.date(year + 1, 4, 14)),  # days, months, across a year
        ]
    ranges += [
        (today - 3659 * day, today),
        (today - 729 * day, today),
        (today.replace(day=1), today),  # this month so far
        (today.replace(month=1, day=1), today),  # this year so far
        (dt.date(today.year - 2, 1, 1), today - day),  # two whole years, months and days
    ]
    return ranges


def except_all_counts(
    conn: psycopg.Connection[Any], stored: sql.Composable, expected: sql.Composable
) -> tuple[int, int]:
    """(rows of ``stored`` not in ``expected``, rows of ``expected`` not stored), both as
    multisets (EXCEPT ALL): (0, 0) when two queries agree row for row."""
    row = conn.execute(
        sql.SQL(
            "select (select count(*) from (select * from ({a}) as a"
            " except all select * from ({b}) as b) as x),"
            " (select count(*) from (select * from ({b}) as b"
            " except all select * from ({a}) as a) as y)"
        ).format(a=stored, b=expected)
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
