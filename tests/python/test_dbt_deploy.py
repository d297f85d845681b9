"""Issue 11, dbt side: deploys that the read path can trust and that never stall readers.

One module database whose schemas need quoting (views in ``Dash Views``, application data in
``App Data``) and a read-only login role granted through ``var('dashquery_read_roles')``:

- item 13: a full ``dbt build`` there succeeds and records every watermark;
- items 2/3: the bookkeeping (``dashquery_relations``, ``upstream_views``/``upstream_hash``,
  ``dashquery_deployment``) tells a partial deploy of a changed daily view apart;
- item 11: an unchanged daily view costs no DDL, and DDL that must run (a changed view, a
  rebuild's swap) never makes readers queue for longer than its lock_timeout;
- item 14: the read role still reads every relation after rebuilds and definition changes.

A changed definition is deployed from a copy of the project whose ``daily_orders.sql`` differs,
as an engineer's branch would.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dashquery.config import Settings
from dashquery.dev.generate import generate
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import PROJECT_DIR, DbtResult, run_dbt
from tests.python.helpers import edited_project

VIEW_SCHEMA = "Dash Views"
SOURCE_SCHEMA = "App Data"
LOCK_TIMEOUT_MS = 500
MATERIALIZED = (
    "mv_current_state",
    "mv_daily_energy",
    "mv_daily_jobs",
    "mv_daily_labor",
    "mv_daily_orders",
    "mv_daily_pipeline",
    "mv_daily_warranty",
    "mv_order_customer_days",
)
# What the read path evaluates against the watermark row's upstream_hash (design doc).
CURRENT_UPSTREAM_HASH = """
    select w.upstream_hash,
        (select string_agg(r.definition_hash, ',' order by r.relation_name)
         from {schema}.dashquery_relations as r
         where r.relation_name = any(w.upstream_views))
    from {schema}.dashquery_watermarks as w where w.view_name = %s
"""

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    role: str
    changed_project: Path

    def dbt(self, *args: str, project: Path = PROJECT_DIR, check: bool = True) -> DbtResult:
        """dbt with the read role configured, as every deploy of this database is."""
        roles = json.dumps({"dashquery_read_roles": [self.role]})
        return run_dbt([*args, "--vars", roles], self.settings, project_dir=project, check=check)

    def connect(self, **extra: str) -> Conn:
        return psycopg.connect(make_conninfo(self.settings.conninfo, **extra), autocommit=True)

    def q(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(schema=sql.Identifier(self.settings.schema))


def changed_copy(folder: Path) -> Path:
    """The project with daily_orders' revenue_cents defined differently (a real change)."""
    return edited_project(
        folder,
        "daily_orders",
        "filter (where status = 'delivered'), 0)::bigint\n            as revenue_cents",
        "filter (where status in ('delivered', 'shipped')), 0)::bigint\n"
        "            as revenue_cents",
    )


@pytest.fixture(scope="module")
def deployment(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    name = f"dash_{uuid.uuid4().hex[:12]}"
    role = f"dq_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    settings = Settings(
        conninfo=stack.conninfo(name), source_schema=SOURCE_SCHEMA, schema=VIEW_SCHEMA
    )
    generate(
        settings.conninfo,
        source_schema=SOURCE_SCHEMA,
        timezone=settings.timezone,
        orgs=2,
        seed=31,
        days=400,
        scale=0.1,
        progress=False,
    )
    deployed = Deployment(settings, role, changed_copy(tmp_path_factory.mktemp("changed")))
    deployed.dbt("build")
    yield deployed


def deploy_original(deployment: Deployment) -> None:
    """Back to the project's own definitions, so each test starts from the same state."""
    deployment.dbt("run", "--select", "daily_orders", "mv_daily_orders")


def stored_and_current_upstream_hash(deployment: Deployment, view: str) -> tuple[str, str]:
    with deployment.connect() as conn:
        row = conn.execute(deployment.q(CURRENT_UPSTREAM_HASH), (view,)).fetchone()
    assert row is not None
    return row[0], row[1]


# -- item 13: names that need quoting ------------------------------------------------------------


def test_build_in_schemas_whose_names_need_quoting(deployment: Deployment) -> None:
    """The fixture's `dbt build` (views in "Dash Views", sources in "App Data") succeeded; every
    mv has its watermark and bookkeeping, and the source indexes were built."""
    with deployment.connect() as conn:
        marks = dict(
            conn.execute(
                deployment.q("select view_name, upstream_views from {schema}.dashquery_watermarks")
            ).fetchall()
        )
        relations = conn.execute(
            deployment.q(
                "select relation_name, kind, timezone, source_schema"
                " from {schema}.dashquery_relations"
            )
        ).fetchall()
        deployments = conn.execute(
            deployment.q("select deployment_id from {schema}.dashquery_deployment")
        ).fetchall()
        indexes = conn.execute(
            deployment.q("select count(*) from {schema}.source_indexes")
        ).fetchone()
    assert set(marks) == set(MATERIALIZED)
    # Every dashboard_view the mv reads, through the staging views too.
    assert marks["mv_daily_orders"] == ["daily_orders", "stg_orders"]
    assert marks["mv_order_customer_days"] == ["daily_order_customers", "stg_orders"]
    kinds = {name: kind for name, kind, _, _ in relations}
    materialized = {name for name, kind in kinds.items() if kind == "materialized_view"}
    assert materialized == set(MATERIALIZED)
    assert {"daily_orders", "daily_energy", "current_state"} <= set(kinds)
    assert {(zone, source) for _, _, zone, source in relations} == {
        (deployment.settings.timezone, SOURCE_SCHEMA)
    }
    assert len(deployments) == 1
    assert indexes is not None and indexes[0] >= 10
    for view in MATERIALIZED:
        stored, current = stored_and_current_upstream_hash(deployment, view)
        assert stored is not None and stored == current, view


# -- items 2/3: bookkeeping tells a partial deploy apart ----------------------------------------


def test_partial_deploy_of_a_changed_view_shows_in_upstream_hash(deployment: Deployment) -> None:
    before, _ = stored_and_current_upstream_hash(deployment, "mv_daily_orders")
    try:
        deployment.dbt("run", "--select", "daily_orders", project=deployment.changed_project)
        stored, current = stored_and_current_upstream_hash(deployment, "mv_daily_orders")
        # The mv still holds the old definition's data, and the bookkeeping says so.
        assert stored == before
        assert current != stored
        deployment.dbt("run", "--select", "mv_daily_orders", project=deployment.changed_project)
        stored, current = stored_and_current_upstream_hash(deployment, "mv_daily_orders")
        assert stored == current != before
        with deployment.connect() as conn:
            action = conn.execute(
                deployment.q(
                    "select action from {schema}.dashquery_refresh_runs"
                    " where view_name = 'mv_daily_orders' order by run_id desc limit 1"
                )
            ).fetchone()
        assert action == ("rebuild",)
    finally:
        deploy_original(deployment)
    stored, current = stored_and_current_upstream_hash(deployment, "mv_daily_orders")
    assert stored == current == before


# -- item 11: the lock queue ----------------------------------------------------------------------


class LongReader:
    """An open transaction that has read `relation`: it holds ACCESS SHARE until closed."""

    def __init__(self, deployment: Deployment, relation: str) -> None:
        self.conn = deployment.connect(application_name="dq_long_reader")
        self.conn.execute("begin")
        self.conn.execute(
            sql.SQL("select count(*) from {}").format(
                sql.Identifier(deployment.settings.schema, relation)
            )
        )

    def close(self) -> None:
        self.conn.execute("rollback")
        self.conn.close()


def in_background(target: Any) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


def relation_row_version(deployment: Deployment, relation: str) -> tuple[str, int]:
    """(xmin, oid) of the relation's pg_class row: any DDL on it writes a new row version."""
    with deployment.connect() as conn:
        row = conn.execute(
            "select c.xmin::text, c.oid::int from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = %s",
            (deployment.settings.schema, relation),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_unchanged_daily_view_costs_no_ddl(deployment: Deployment) -> None:
    """A long reader holds daily_orders; redeploying it unchanged neither waits nor writes."""
    before = relation_row_version(deployment, "daily_orders")
    reader = LongReader(deployment, "daily_orders")
    try:
        run, results = in_background(
            lambda: deployment.dbt("run", "--select", "daily_orders", check=False)
        )
        run.join(timeout=120)
        finished = not run.is_alive()
    finally:
        reader.close()
    run.join(timeout=120)
    assert finished, "dbt run of an unchanged view waited behind a reader"
    assert results[0].returncode == 0, results[0].output
    assert "UNCHANGED" in results[0].output
    assert relation_row_version(deployment, "daily_orders") == before


def test_a_copy_under_another_name_refreshes_without_rebuilding(
    deployment: Deployment, stack: LocalStack
) -> None:
    """A database copied under another name (CREATE DATABASE ... TEMPLATE, as a restore into
    a new database would be) holds the same definitions: its next run refreshes every
    materialized relation and replaces no view. The recorded hashes used to include the
    database name dbt renders in front of every relation, so the copy rebuilt everything."""
    copy = f"dash_copy_{uuid.uuid4().hex[:8]}"
    template = conninfo_to_dict(deployment.settings.conninfo)["dbname"]
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        create = sql.SQL("create database {} template {}")
        conn.execute(create.format(sql.Identifier(copy), sql.Identifier(str(template))))
    try:
        copied = Deployment(
            Settings(
                conninfo=stack.conninfo(copy), source_schema=SOURCE_SCHEMA, schema=VIEW_SCHEMA
            ),
            deployment.role,
            deployment.changed_project,
        )
        output = copied.dbt("run").output
        assert output.count("REFRESH incremental (repeatable read)") == len(MATERIALIZED), output
        assert "REBUILD" not in output and "CREATE" not in output, output
        assert "UNCHANGED" in output and "REPLACE" not in output, output
    finally:
        with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
            drop = sql.SQL("drop database if exists {} with (force)")
            conn.execute(drop.format(sql.Identifier(copy)))


def readers_never_queue_while(
    deployment: Deployment, relation: str, args: tuple[str, ...], project: Path
) -> None:
    """Run dbt while a long reader holds `relation`; meanwhile fresh readers of it must each
    finish within about the lock_timeout. The run must finish once the long reader ends."""
    probe_sql = sql.SQL("select 1 from {} limit 0").format(
        sql.Identifier(deployment.settings.schema, relation)
    )
    reader = LongReader(deployment, relation)
    slowest = 0.0
    probes = 0
    waited_for_lock = False
    activity: set[tuple[Any, ...]] = set()  # what the other backends did, for a failure message
    try:
        run, results = in_background(lambda: deployment.dbt(*args, project=project, check=False))
        with (
            deployment.connect(options="-c statement_timeout=20000") as probe,
            deployment.connect() as watcher,
        ):
            deadline = time.monotonic() + 300  # a loaded machine; normally ~20 s
            while time.monotonic() < deadline and run.is_alive():
                # Look first, then probe: a probe queued behind the DDL's lock attempt returns
                # only when that attempt has timed out, so a look right after it would always
                # find the DDL between attempts (sleeping), never waiting for the lock.
                waiting = watcher.execute(
                    "select count(*) from pg_stat_activity where datname = current_database()"
                    " and wait_event_type = 'Lock' and application_name <> 'dq_long_reader'"
                    # pg_stat_activity keeps the first 1 kB of a query: the swap's retry
                    # block may start later in the text than its `__dq_new` names.
                    " and (query ilike '%%dq_retry%%' or query ilike '%%\\_\\_dq\\_new%%')"
                ).fetchone()
                waited_for_lock = waited_for_lock or bool(waiting and waiting[0])
                started = time.perf_counter()
                probe.execute(probe_sql)
                slowest = max(slowest, time.perf_counter() - started)
                probes += 1
                activity.update(
                    watcher.execute(
                        "select wait_event_type, wait_event, state, query ilike '%%dq_retry%%',"
                        " left(query, 120)"
                        " from pg_stat_activity where datname = current_database()"
                        " and pid <> pg_backend_pid() and application_name <> 'dq_long_reader'"
                    ).fetchall()
                )
                # Enough probes after the DDL first waited to have seen several attempts.
                if waited_for_lock and probes > 40:
                    break
                time.sleep(0.05)
            assert run.is_alive(), f"dbt finished while the long reader held {relation}"
    finally:
        reader.close()
    run.join(timeout=180)
    assert not run.is_alive(), "dbt did not finish after the long reader ended"
    assert results[0].returncode == 0, results[0].output
    assert waited_for_lock, "the DDL never waited for the long reader's lock; seen:\n" + "\n".join(
        map(str, sorted(activity, key=str))
    )
    assert slowest < LOCK_TIMEOUT_MS / 1000 + 1.5, f"a fresh reader waited {slowest:.2f} s"


def test_changed_view_deploy_never_queues_readers(deployment: Deployment) -> None:
    try:
        readers_never_queue_while(
            deployment,
            "daily_orders",
            ("run", "--select", "daily_orders"),
            deployment.changed_project,
        )
        with deployment.connect() as conn:
            definition = conn.execute(
                "select pg_get_viewdef(to_regclass(%s))",
                (f'"{VIEW_SCHEMA}".daily_orders',),
            ).fetchone()
        assert definition is not None and "shipped" in definition[0]
    finally:
        deploy_original(deployment)


def test_rebuild_swap_never_queues_readers(deployment: Deployment) -> None:
    before = relation_row_version(deployment, "mv_daily_orders")
    readers_never_queue_while(
        deployment,
        "mv_daily_orders",
        ("run", "--select", "mv_daily_orders", "--full-refresh"),
        PROJECT_DIR,
    )
    assert relation_row_version(deployment, "mv_daily_orders")[1] != before[1]


# -- item 14: grants survive rebuilds -------------------------------------------------------------


def assert_role_reads_everything(deployment: Deployment) -> None:
    with psycopg.connect(role_conninfo(deployment), autocommit=True) as conn:
        for relation in (
            "mv_daily_orders",
            "daily_orders",
            "mv_order_customer_days",
            "current_state",
            "dashquery_relations",
            "dashquery_watermarks",
            "dashquery_deployment",
        ):
            conn.execute(
                sql.SQL("select * from {} limit 1").format(
                    sql.Identifier(deployment.settings.schema, relation)
                )
            )


def role_conninfo(deployment: Deployment) -> str:
    user = dict(conninfo_to_dict(deployment.settings.conninfo))
    user.pop("password", None)
    user["user"] = deployment.role
    return make_conninfo(**user)


def test_read_role_never_loses_access_during_a_rebuild(deployment: Deployment) -> None:
    """The swap and its GRANT commit together: a reader polling as the read role while the
    mv is rebuilt never gets "permission denied" (nor a missing relation)."""
    errors: list[str] = []
    reads = 0
    done = threading.Event()
    probe = sql.SQL("select 1 from {} limit 0").format(
        sql.Identifier(deployment.settings.schema, "mv_daily_orders")
    )

    def poll() -> None:
        nonlocal reads
        with psycopg.connect(role_conninfo(deployment), autocommit=True) as conn:
            while not done.is_set():
                try:
                    conn.execute(probe)
                    reads += 1
                except psycopg.Error as exc:
                    errors.append(str(exc).strip())

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for _ in range(2):
            deployment.dbt("run", "--select", "mv_daily_orders", "--full-refresh")
    finally:
        done.set()
        poller.join(timeout=30)
    assert reads > 0
    assert not errors, errors[:3]


def test_read_role_keeps_access_through_rebuilds(deployment: Deployment) -> None:
    assert_role_reads_everything(deployment)
    # --full-refresh: the daily view is dropped with its dependents and recreated, the mvs
    # built anew; then a changed definition replaces the view and rebuilds (swaps) the mv.
    deployment.dbt("run", "--select", "daily_orders+", "--full-refresh")
    assert_role_reads_everything(deployment)
    try:
        deployment.dbt(
            "run", "--select", "daily_orders", "mv_daily_orders", project=deployment.changed_project
        )
        assert_role_reads_everything(deployment)
    finally:
        deploy_original(deployment)
    assert_role_reads_everything(deployment)
    with deployment.connect() as conn:
        granted = conn.execute(
            "select has_table_privilege(%s, %s, 'select')",
            (deployment.role, f'"{VIEW_SCHEMA}".mv_daily_orders'),
        ).fetchone()
    assert granted == (True,)


def test_a_role_taken_out_of_the_var_loses_its_access(
    deployment: Deployment, stack: LocalStack
) -> None:
    """A second read role is granted by one run and revoked by the next run without it: no
    USAGE on the view schema, no SELECT on a bookkeeping table or a block; the remaining role
    keeps both. A role dashquery never granted keeps what it was granted by hand."""
    extra, manual = f"dq_reader_{uuid.uuid4().hex[:8]}", f"dq_manual_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        for role in (extra, manual):
            conn.execute(sql.SQL("create role {}").format(sql.Identifier(role)))
    grant = sql.SQL("grant usage on schema {} to {}")
    with deployment.connect() as conn:
        conn.execute(grant.format(sql.Identifier(VIEW_SCHEMA), sql.Identifier(manual)))

    def access(role: str) -> tuple[bool, bool, bool]:
        with deployment.connect() as conn:
            row = conn.execute(
                "select has_schema_privilege(%s, %s, 'usage'),"
                " has_table_privilege(%s, %s, 'select'), has_table_privilege(%s, %s, 'select')",
                (role, VIEW_SCHEMA, role, f'"{VIEW_SCHEMA}".dashquery_watermarks',
                 role, f'"{VIEW_SCHEMA}".mv_daily_orders'),
            ).fetchone()  # fmt: skip
        assert row is not None
        return row

    both = json.dumps({"dashquery_read_roles": [deployment.role, extra]})
    run_dbt(["run", "--select", "mv_daily_orders", "--vars", both], deployment.settings)
    assert access(extra) == (True, True, True)
    deployment.dbt("run", "--select", "stg_orders")  # the var names deployment.role only
    assert access(extra) == (False, False, False)
    assert access(deployment.role) == (True, True, True)
    assert access(manual)[0] is True


def view_columns(deployment: Deployment, relation: str) -> list[str]:
    with deployment.connect() as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (deployment.settings.schema, relation),
        ).fetchall()
    return [name for (name,) in rows]


def test_a_view_whose_columns_change_needs_no_full_refresh(
    deployment: Deployment, tmp_path: Path
) -> None:
    """An upgrade that takes a column out of a daily view (the labour split took labor_hours
    out of daily_jobs): CREATE OR REPLACE VIEW cannot drop, rename or retype a column, so the
    view is dropped and created in the same transaction (nothing of dashquery's depends on it
    in the catalog) and its block rebuilds from it; the original comes back the same way, the
    read role keeps its access. With another relation depending on the view the run fails
    with the --full-refresh hint and changes nothing."""
    renamed = edited_project(
        tmp_path, "daily_warranty", "count(*) as warranty_claims", "count(*) as claims_renamed"
    )
    before = view_columns(deployment, "daily_warranty")
    assert "warranty_claims" in before
    try:
        deployment.dbt("run", "--select", "daily_warranty+", project=renamed)
        after = view_columns(deployment, "daily_warranty")
        assert "claims_renamed" in after and "warranty_claims" not in after, after
        assert "claims_renamed" in view_columns(deployment, "mv_daily_warranty")
        with deployment.connect() as conn:
            conn.execute(
                deployment.q(
                    "create view {schema}.analyst_view as select * from {schema}.daily_warranty"
                )
            )
        try:
            failed = deployment.dbt("run", "--select", "daily_warranty", check=False)
            assert failed.returncode != 0
            assert "--full-refresh" in failed.output and "analyst_view" in failed.output
            assert view_columns(deployment, "daily_warranty") == after
        finally:
            with deployment.connect() as conn:
                conn.execute(deployment.q("drop view {schema}.analyst_view"))
    finally:
        deployment.dbt("run", "--select", "daily_warranty+")
    assert view_columns(deployment, "daily_warranty") == before
    assert "warranty_claims" in view_columns(deployment, "mv_daily_warranty")
    with psycopg.connect(role_conninfo(deployment), autocommit=True) as conn:
        for relation in ("daily_warranty", "mv_daily_warranty"):
            conn.execute(
                sql.SQL("select * from {} limit 1").format(
                    sql.Identifier(deployment.settings.schema, relation)
                )
            )
