"""The development stack starts real servers, is idempotent and survives fault injection."""

from __future__ import annotations

import psycopg
import pytest
import redis

from dashquery.dev.stack import LocalStack, StackError
from tests.python.fault_stack import FaultStack


def test_both_servers_answer(pg_conninfo: str, redis_client: redis.Redis) -> None:
    with psycopg.connect(pg_conninfo) as conn:
        version = conn.execute("select current_setting('server_version_num')::int").fetchone()
        assert version is not None and 150000 <= version[0] < 160000
        assert conn.execute("select current_database()").fetchone() == ("dashquery",)
        assert conn.execute("show max_connections").fetchone() == ("300",)
    assert redis_client.ping() is True
    assert redis_client.config_get("save") == {"save": ""}


def test_env_points_at_the_servers(stack: LocalStack) -> None:
    env = stack.env()
    assert env["PGHOST"] == "127.0.0.1" and env["PGUSER"] == "postgres"
    assert env["DASHQUERY_REDIS_URL"].startswith("redis://127.0.0.1:")
    exports = (stack.root / "env.sh").read_text()
    assert f"export PGPORT={env['PGPORT']}\n" in exports


def test_start_twice_is_idempotent(stack: LocalStack) -> None:
    before = stack.env()
    assert FaultStack(root=stack.root).start() == before
    assert stack.start() == before


def test_fresh_db_is_empty_and_separate(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        name = conn.execute("select current_database()").fetchone()
        assert name is not None and name[0].startswith("test_")
        tables = "select count(*) from pg_tables where schemaname = 'public'"
        assert conn.execute(tables).fetchone() == (0,)


def test_redis_stop_start_round_trip(stack: LocalStack, redis_client: redis.Redis) -> None:
    port = stack.env()["DASHQUERY_REDIS_URL"]
    redis_client.set("k", "v")
    stack.stop_redis()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(port, socket_connect_timeout=1).ping()
    stack.start_redis()
    assert stack.env()["DASHQUERY_REDIS_URL"] == port
    assert redis_client.ping() is True
    assert redis_client.get("k") is None  # nothing was persisted


def test_pause_makes_redis_time_out(stack: LocalStack, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.3)
    stack.pause_redis()
    try:
        with pytest.raises(redis.TimeoutError):
            client.ping()
    finally:
        stack.resume_redis()
    assert redis.Redis.from_url(redis_url).ping() is True


def test_restart_postgres_drops_connections(stack: LocalStack, pg_conninfo: str) -> None:
    with psycopg.connect(pg_conninfo) as conn:
        stack.restart_postgres()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 1")
    with psycopg.connect(pg_conninfo) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_stop_is_safe_twice_and_destroy_removes_the_folder(stack: LocalStack) -> None:
    local = FaultStack(root=stack.root.with_name(stack.root.name + "-own"))
    local.stop()  # nothing running yet
    env = local.start()
    local.stop()
    local.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(local.conninfo(), connect_timeout=2)
    assert local.start()["PGPORT"] == env["PGPORT"]  # restarts from the same folder
    local.destroy()
    assert not local.root.exists()
    with pytest.raises(StackError):
        local.env()
