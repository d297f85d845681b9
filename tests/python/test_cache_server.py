"""Issue 11 item 6b: the cache is used only while Redis cannot lose an invalidation.

Under ``maxmemory`` with ``noeviction`` a full Redis refuses the generation INCR (OOM); under
``allkeys-*`` it may evict a counter. Either way other processes would serve values an
invalidation dropped. ``maxmemory`` 0 or a ``volatile-*`` policy is safe (values carry a TTL
and go first; counters never). These tests reconfigure the session's real Redis and put its
settings back afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest
import redis

from dashquery import Client
from tests.python.cache_support import add_order_now
from tests.python.faults_support import patient_cache
from tests.python.helpers import Dashboard, assert_matches_naive, business_today

DAY = dt.timedelta(days=1)


@pytest.fixture
def server(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    saved = redis_client.config_get("maxmemory*")
    try:
        yield redis_client
    finally:
        redis_client.flushall()
        for name in ("maxmemory", "maxmemory-policy"):
            redis_client.config_set(name, saved[name])


def limit_memory(server: redis.Redis, policy: str) -> None:
    used = int(server.info("memory")["used_memory"])
    server.config_set("maxmemory", used + 8 * 1024 * 1024)
    server.config_set("maxmemory-policy", policy)


def fill_until_refused(server: redis.Redis) -> None:
    """Writes without a TTL until Redis refuses one with OOM (noeviction)."""
    for i in range(10_000):
        try:
            server.set(f"filler:{i}", b"x" * 100_000)
        except redis.exceptions.OutOfMemoryError:
            return
    raise AssertionError("Redis never ran out of memory")


def test_noeviction_never_serves_a_value_an_invalidation_dropped(
    scratch_dashboard: Dashboard, server: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    org = scratch_dashboard.organization_ids[0]
    today = business_today(scratch_dashboard.settings)
    window = (today - 29 * DAY, today)
    limit_memory(server, "noeviction")
    with (
        Client(settings=scratch_dashboard.settings) as a,
        Client(settings=scratch_dashboard.settings) as b,
    ):
        patient_cache(a)
        patient_cache(b)
        first = a.get_metrics(org, *window)
        second = a.get_metrics(org, *window)  # a cache hit, if the cache were used
        fill_until_refused(server)
        add_order_now(scratch_dashboard, org)
        b.invalidate_org(org)  # its INCR is refused: OOM
        after = a.get_metrics(org, *window)
        assert after["orders_count"] == first["orders_count"] + 1  # type: ignore[operator]
        with scratch_dashboard.connect() as conn:
            assert_matches_naive(conn, scratch_dashboard.settings, after)
        assert [r.source for r in (first, second, after)] == ["computed"] * 3
        assert a.cache is not None
        problem = a.cache.check_server()
        assert problem and "'noeviction'" in problem and "volatile-lru" in problem
    warned = [r.getMessage() for r in caplog.records if "'noeviction'" in r.getMessage()]
    assert len(warned) == 2, warned  # once per client, not once per call


@pytest.mark.parametrize(
    ("maxmemory", "policy", "usable"),
    [
        (True, "noeviction", False),
        (True, "allkeys-lru", False),
        (True, "allkeys-random", False),
        (True, "volatile-lru", True),
        (True, "volatile-ttl", True),
        (False, "noeviction", True),  # maxmemory 0: never evicts, never refuses
    ],
)
def test_the_cache_is_used_only_under_a_safe_memory_policy(
    scratch_dashboard: Dashboard, server: redis.Redis, maxmemory: bool, policy: str, usable: bool
) -> None:
    org = scratch_dashboard.organization_ids[1]
    if maxmemory:
        limit_memory(server, policy)
    else:
        server.config_set("maxmemory", 0)
        server.config_set("maxmemory-policy", policy)
    with Client(settings=scratch_dashboard.settings) as client:
        cache = patient_cache(client)
        assert (cache.check_server() is None) is usable
        sources = [client.get_metrics(org, "2025-01-01", "2025-03-31").source for _ in range(2)]
        assert sources == (["computed", "cache"] if usable else ["computed", "computed"])


def test_a_policy_changed_while_running_is_noticed_at_the_next_check(
    scratch_dashboard: Dashboard, server: redis.Redis
) -> None:
    org = scratch_dashboard.organization_ids[1]
    server.config_set("maxmemory", 0)
    with Client(settings=scratch_dashboard.settings) as client:
        patient_cache(client, server_check_seconds=0.0)  # every call checks: no waiting here
        window = ("2025-04-01", "2025-04-30")
        assert [client.get_metrics(org, *window).source for _ in range(2)] == [
            "computed",
            "cache",
        ]
        limit_memory(server, "allkeys-lru")
        assert client.get_metrics(org, *window).source == "computed"
        server.config_set("maxmemory-policy", "volatile-lru")
        assert client.get_metrics(org, *window).source == "cache"
