"""Issue 8 §7: a PostgreSQL statement timeout or lost connections cost bounded retries, then
a clear ``dashquery.Unavailable``; the same Client answers again afterwards, no restart.

PostgreSQL is restarted here, so the tests run against a stack of this module's own; a
loopback proxy cuts the link to it without moving its port.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dashquery import Client, DashboardMetrics, Unavailable
from dashquery.dev.stack import LocalStack
from tests.python.faults_support import TcpProxy, last_quarter, numbers, private_stack
from tests.python.helpers import SCRATCH_SEED, Dashboard, assert_matches_naive, build_dashboard


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with private_stack("dashquery-pg-faults-") as local:
        yield local


@pytest.fixture(scope="module")
def own_dashboard(stack: LocalStack) -> Dashboard:
    return build_dashboard(stack, stack.env()["DASHQUERY_REDIS_URL"], seed=SCRATCH_SEED, orgs=1)


def test_statement_timeout_gives_unavailable_after_bounded_retries(
    stack: LocalStack, own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture
) -> None:
    settings = own_dashboard.settings
    request = last_quarter(own_dashboard)
    watermarks = sql.SQL("lock table {}.dashquery_watermarks in access exclusive mode").format(
        sql.Identifier(settings.schema)
    )
    with (
        Client(settings=settings, cache=False, statement_timeout_ms=200, retries=2) as client,
        own_dashboard.connect() as locker,
        own_dashboard.connect() as conn,
    ):
        client.get_metrics(*request)
        with locker.transaction():
            locker.execute(watermarks)  # every hybrid read waits on this lock
            started = time.monotonic()
            with pytest.raises(Unavailable, match="after 3 attempts") as raised:
                client.get_metrics(*request)
            elapsed = time.monotonic() - started
        assert "statement timeout" in str(raised.value)
        attempts = [r for r in warnings.records if "PostgreSQL attempt" in r.getMessage()]
        assert len(attempts) == 3
        assert elapsed < 30
        assert_matches_naive(conn, settings, client.get_metrics(*request))


def test_terminated_connections_are_replaced(stack: LocalStack, own_dashboard: Dashboard) -> None:
    settings = dataclasses.replace(
        own_dashboard.settings,
        conninfo=own_dashboard.settings.conninfo + " application_name=dq_faults_pool",
    )
    request = last_quarter(own_dashboard)
    with (
        Client(settings=settings, cache=False, pool_size=4) as client,
        own_dashboard.connect() as conn,
    ):
        with ThreadPoolExecutor(4) as workers:
            list(workers.map(lambda _: client.compute(*request), range(16)))
        killed = conn.execute(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where application_name = 'dq_faults_pool'"
        ).fetchone()
        assert killed is not None and killed[0] >= 1
        for _ in range(5):
            assert_matches_naive(conn, settings, client.get_metrics(*request))


def test_postgres_restart_drops_connections_and_reads_go_on(
    stack: LocalStack, own_dashboard: Dashboard
) -> None:
    request = last_quarter(own_dashboard)
    with Client(settings=own_dashboard.settings, cache=False) as client:
        with ThreadPoolExecutor(4) as workers:  # several pooled connections to lose
            before = list(workers.map(lambda _: client.compute(*request).metrics, range(8)))
        stack.restart_postgres()
        with own_dashboard.connect() as conn:
            for _ in range(5):
                result = client.get_metrics(*request)
                assert result.metrics == before[0]
                assert_matches_naive(conn, own_dashboard.settings, result)


def test_unreachable_postgres_gives_unavailable_then_the_pool_recovers(
    stack: LocalStack, own_dashboard: Dashboard
) -> None:
    """A partition (the proxy resets every connection): bounded retries, a clear error, and
    the same Client answers again once the link is back."""
    request = last_quarter(own_dashboard)
    pg_port = int(stack.env()["PGPORT"])
    with TcpProxy(pg_port) as proxy:
        settings = dataclasses.replace(
            own_dashboard.settings,
            conninfo=make_conninfo(own_dashboard.settings.conninfo, port=proxy.port),
        )
        with Client(settings=settings, pool_timeout_seconds=1, retries=2) as client:
            expected = numbers(client.get_metrics(*request))
            client.invalidate_all()
            proxy.cut()
            started = time.monotonic()
            with pytest.raises(Unavailable, match="PostgreSQL did not answer after 3 attempts"):
                client.get_metrics(*request)
            assert time.monotonic() - started < 30
            time.sleep(2)  # a few more failed reconnections: the pool backs off
            proxy.heal()
            result = answer_within(client, request, seconds=60)
            assert (result.source, numbers(result)) == ("computed", expected)


def answer_within(client: Client, request: Any, *, seconds: float) -> DashboardMetrics:
    """The first answer, asking again on Unavailable until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while True:
        try:
            result = client.get_metrics(*request)
            print(f"recovered after {time.monotonic() - started:.2f} s")
            return result
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
