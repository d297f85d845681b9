"""Real servers for the test suite: one throwaway PostgreSQL 15 + Redis per session (under
pytest-xdist, per worker process: scripts/test runs two).

The stack lives in its own temporary folder on its own free ports, so it never touches a
developer's ``.stack`` nor another test session running at the same time. The folder is made
with ``tempfile`` rather than ``tmp_path_factory``: as root the servers run as the ``dashquery``
user, and every pytest start resets ``/tmp/pytest-of-root`` to mode 0700, which would lock
that user out of a running cluster whenever a second pytest starts on the machine.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from dashquery.dev.stack import LocalStack
from tests.python.fault_stack import FaultStack
from tests.python.helpers import SCRATCH_SEED, Dashboard, build_dashboard


@pytest.fixture(scope="session")
def stack() -> Iterator[FaultStack]:
    """A started stack (with the test-only fault hooks) for the session, then destroyed."""
    local = FaultStack(root=Path(tempfile.mkdtemp(prefix="dashquery-stack-")))
    try:
        local.start()
        yield local
    finally:
        local.destroy()


@pytest.fixture(scope="session")
def pg_conninfo(stack: LocalStack) -> str:
    """libpq conninfo of the stack's ``postgres`` superuser on database ``dashquery``."""
    return stack.conninfo()


@pytest.fixture
def fresh_db(stack: LocalStack) -> Iterator[str]:
    """Conninfo of a new empty database, dropped (WITH (FORCE)) after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield stack.conninfo(name)
    finally:
        with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
            drop = sql.SQL("drop database if exists {} with (force)")
            conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_url(stack: LocalStack) -> str:
    """URL of the stack's Redis, database 0."""
    return stack.env()["DASHQUERY_REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the stack's Redis, emptied (FLUSHALL) before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog`` capturing WARNING and up: the retry and breaker logs the fault tests count."""
    caplog.set_level(logging.WARNING)
    return caplog


@pytest.fixture(scope="session")
def dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    """Read-only shared data: tests must not write to it (use ``scratch_dashboard``)."""
    return build_dashboard(stack, redis_url, seed=11, orgs=3)


@pytest.fixture(scope="module")
def scratch_dashboard(stack: LocalStack, redis_url: str) -> Dashboard:
    """A dashboard database of the test module's own, free to write to and refresh."""
    return build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder is the integration tier (real PostgreSQL and Redis)."""
    for item in items:
        if "tests/python/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
