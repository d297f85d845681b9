"""Issue 11 items 10 and 12 (PostgreSQL side): a server that cannot be reached, a setting that
cannot answer and a frozen server each give the documented error, naming the cause, fast.

Runs on a stack of this module's own: it freezes PostgreSQL (SIGSTOP) and edits pg_hba.conf.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dashquery import Client, DashqueryError, Misconfigured, Unavailable
from dashquery.dev.stack import LocalStack
from tests.python.faults_support import free_port, last_quarter, private_stack, relation
from tests.python.helpers import SCRATCH_SEED, Dashboard, assert_matches_naive, build_dashboard

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with private_stack("dashquery-pg-down-") as local:
        yield local


@pytest.fixture(scope="module")
def own_dashboard(stack: LocalStack) -> Dashboard:
    return build_dashboard(stack, stack.env()["DASHQUERY_REDIS_URL"], seed=SCRATCH_SEED, orgs=1)


def with_conninfo(dashboard: Dashboard, **changes: Any) -> Any:
    conninfo = make_conninfo(dashboard.settings.conninfo, **changes)
    return dataclasses.replace(dashboard.settings, conninfo=conninfo)


def raised_by(settings: Any, request: Any, **options: Any) -> tuple[DashqueryError, float]:
    """The error of a first get_metrics of a new Client, and how long it took."""
    with Client(settings=settings, cache=False, **options) as client:
        started = time.monotonic()
        with pytest.raises(DashqueryError) as raised:
            client.get_metrics(*request)
        return raised.value, time.monotonic() - started


def allow_password_role(stack: LocalStack, conn: Conn) -> None:
    """Role dq_pw may log in with a password only (the stack trusts everyone else)."""
    conn.execute("drop role if exists dq_pw")
    conn.execute("create role dq_pw login password 'right-password'")
    hba = stack.pgdata / "pg_hba.conf"
    lines = hba.read_text()
    if "dq_pw" not in lines:
        stat = hba.stat()
        hba.write_text("host all dq_pw 127.0.0.1/32 scram-sha-256\n" + lines)
        os.chown(hba, stat.st_uid, stat.st_gid)
    conn.execute("select pg_reload_conf()")
    time.sleep(0.5)


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("refused", "connection refused"),
        ("unknown host", "unknown host"),
        ("wrong password", "authentication failed"),
        ("missing database", "database missing"),
    ],
)
def test_unreachable_postgres_is_unavailable_naming_the_cause_quickly(
    stack: LocalStack, own_dashboard: Dashboard, case: str, cause: str
) -> None:
    changes: dict[str, Any] = {
        "refused": {"port": free_port()},
        "unknown host": {"host": "no-such-host.invalid"},
        "wrong password": {"user": "dq_pw", "password": "wrong-password"},
        "missing database": {"dbname": "no_such_database"},
    }[case]
    if case == "wrong password":
        with own_dashboard.connect() as conn:
            allow_password_role(stack, conn)
    settings = with_conninfo(own_dashboard, **changes)
    error, elapsed = raised_by(settings, last_quarter(own_dashboard), pool_timeout_seconds=5)
    assert isinstance(error, Unavailable), error
    assert cause in str(error), str(error)
    assert "couldn't get a connection" not in str(error)
    assert elapsed < 5, f"{elapsed:.1f} s"  # not pool_timeout x attempts
    assert isinstance(error.__cause__, psycopg.Error | type(None))


@pytest.mark.parametrize("table", ["dashquery_watermarks", "dashquery_relations", None])
def test_missing_schema_or_bookkeeping_is_misconfigured_at_once(
    own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture, table: str | None
) -> None:
    settings = own_dashboard.settings
    with own_dashboard.connect() as conn:
        if table is None:  # the whole schema: another DASHQUERY_SCHEMA than dbt's
            settings = dataclasses.replace(settings, schema="no_views_here")
        else:
            rename = sql.SQL("alter table {} rename to {}")
            conn.execute(rename.format(relation(own_dashboard, table), sql.Identifier("moved")))
        try:
            error, elapsed = raised_by(settings, last_quarter(own_dashboard))
        finally:
            if table is not None:
                conn.execute(rename.format(relation(own_dashboard, "moved"), sql.Identifier(table)))
    assert isinstance(error, Misconfigured), error
    assert "has no dashquery views" in str(error) and "dbt build" in str(error)
    assert (table or "does not exist") in str(error)
    assert elapsed < 1.5
    assert not warnings.records, [r.getMessage() for r in warnings.records]


def test_no_privilege_is_misconfigured_naming_the_relation_and_the_grant(
    own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture
) -> None:
    schema = sql.Identifier(own_dashboard.settings.schema)
    with own_dashboard.connect() as conn:
        conn.execute("drop owned by dq_reader" if role_exists(conn, "dq_reader") else "select 1")
        conn.execute("drop role if exists dq_reader")
        conn.execute("create role dq_reader login")
        conn.execute(sql.SQL("grant usage on schema {} to dq_reader").format(schema))
        for table in ("dashquery_watermarks", "dashquery_relations", "dashquery_deployment"):
            grant = sql.SQL("grant select on {} to dq_reader")
            conn.execute(grant.format(relation(own_dashboard, table)))
        reader = with_conninfo(own_dashboard, user="dq_reader")
        error, elapsed = raised_by(reader, last_quarter(own_dashboard))
        assert isinstance(error, Misconfigured), error
        message = str(error)
        assert "permission denied for" in message and "grant select" in message, message
        assert "dq_reader" in message and elapsed < 1.5
        assert not [r for r in warnings.records if "attempt" in r.getMessage()]
        # With the grant the message names, the same role reads, exactly.
        conn.execute(sql.SQL("grant select on all tables in schema {} to dq_reader").format(schema))
        with Client(settings=reader, cache=False) as client:
            assert_matches_naive(conn, reader, client.get_metrics(*last_quarter(own_dashboard)))
            may = conn.execute(
                "select has_function_privilege('dq_reader', 'pg_control_system()', 'execute')"
            ).fetchone()
            system_id = client.computer.identity().split(":")[0]
            assert (system_id != "") == bool(may and may[0])


def role_exists(conn: Conn, name: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone() is not None


def server_pids(stack: LocalStack) -> list[int]:
    """The postmaster and every child of it."""
    postmaster = int((stack.pgdata / "postmaster.pid").read_text().split()[0])
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(proc.name))
    return [postmaster, *children]


def test_frozen_postgres_gives_unavailable_within_the_bound_then_recovers(
    stack: LocalStack, own_dashboard: Dashboard
) -> None:
    """SIGSTOP of every server process mid-read: no TCP reset, no statement_timeout (the
    backend is stopped): only the client-side deadline can end the call."""
    request = last_quarter(own_dashboard)
    options = {"statement_timeout_ms": 2000, "pool_timeout_seconds": 2.0, "retries": 1}
    bound = (options["retries"] + 1) * (options["pool_timeout_seconds"] + 2.0) + 0.15
    outcome: dict[str, Any] = {}
    with (
        Client(settings=own_dashboard.settings, cache=False, **options) as client,
        own_dashboard.connect() as locker,
    ):
        expected = client.get_metrics(*request).metrics
        locker.execute("begin")
        locker.execute(
            sql.SQL("lock table {} in access exclusive mode").format(
                relation(own_dashboard, "dashquery_watermarks")
            )
        )

        def read() -> None:
            started = time.monotonic()
            try:
                client.get_metrics(*request)
            except BaseException as exc:
                outcome["error"] = exc
            outcome["elapsed"] = time.monotonic() - started

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.5)  # the read waits on the lock inside the server
        pids = server_pids(stack)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            reader.join(timeout=bound + 20)
            assert not reader.is_alive(), "get_metrics hung on a frozen server"
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        locker.execute("rollback")
        assert isinstance(outcome.get("error"), Unavailable), outcome
        print(f"frozen: Unavailable after {outcome['elapsed']:.2f} s (bound {bound:.2f} s)")
        # A correctness bound with room for a loaded 2-core machine, not a benchmark.
        assert outcome["elapsed"] < bound + 2, outcome
        deadline = time.monotonic() + 30
        while True:
            try:
                assert client.get_metrics(*request).metrics == expected
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the Client did not answer again"
                time.sleep(0.2)
