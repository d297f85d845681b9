"""Issue 11 items 4, 7 and 8: a cached value is the computed one, exactly, of the same
database, and never one an invalidation overtook.

- item 4: two databases with the same schema names and the same organization ids (one
  copied from the other) share one Redis; each gets its own numbers.
- item 7: a call that starts after ``invalidate_org`` returned never joins a computation
  that read the database before the write.
- item 8: cache hits have the computed types and values (int, exact Decimal, None, dicts of
  int) for metrics, series and comparison deltas.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest
import redis
from psycopg import sql

from dashquery import Client, DashboardMetrics
from dashquery.config import Settings
from dashquery.dev.stack import LocalStack
from dashquery.read.compare import ComparedMetrics
from dashquery.read.request import MetricsRequest
from dashquery.read.series import SERIES_METRICS
from tests.python.cache_support import add_order_now, typed, typed_value
from tests.python.faults_support import patient_cache
from tests.python.helpers import Dashboard, assert_matches_naive, build_dashboard, business_today

DAY = dt.timedelta(days=1)


# -- item 8: same types and values ----------------------------------------------------------


def test_cache_hits_have_the_computed_types_and_values(
    dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    today = business_today(dashboard.settings)
    ranges = [(today - 364 * DAY, today), (today - 29 * DAY, today), (today, today)]
    long_decimals = 0
    with Client(settings=dashboard.settings) as client:
        patient_cache(client)
        for org in dashboard.organization_ids:
            for date_from, date_to in ranges:
                computed = client.get_metrics(org, date_from, date_to)
                cached = client.get_metrics(org, date_from, date_to)
                assert (computed.source, cached.source) == ("computed", "cache")
                assert typed(cached) == typed(computed), (org, date_from, date_to)
                assert cached.to_dict() == {**computed.to_dict(), "source": "cache"}
                long_decimals += sum(
                    isinstance(v, Decimal) and len(v.as_tuple().digits) > 15
                    for v in cached.metrics.values()
                )
                for metric in SERIES_METRICS:
                    series = [
                        client.get_series(org, metric, date_from, date_to, "week") for _ in range(2)
                    ]
                    assert [s.source for s in series] == ["computed", "cache"]
                    assert [typed_value(v) for _, v in series[1].points] == [
                        typed_value(v) for _, v in series[0].points
                    ], metric
                    assert series[1].to_dict() == {**series[0].to_dict(), "source": "cache"}
    # Averages such as Decimal('4579814.886363636364'): a float would have lost digits.
    assert long_decimals > 0, "no value a binary float could not hold: the test proves nothing"


def test_comparison_deltas_are_exact_and_the_same_cached(
    dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org = dashboard.organization_ids[0]
    today = business_today(dashboard.settings)
    with Client(settings=dashboard.settings) as client:
        patient_cache(client)
        first, second = (
            client.get_metrics(org, today - 89 * DAY, today, compare="previous_period")
            for _ in range(2)
        )
    assert isinstance(first, ComparedMetrics) and isinstance(second, ComparedMetrics)
    assert second.source == "cache" and first.source == "computed"
    assert {k: typed_value(v) for k, v in second.deltas.items()} == {
        k: typed_value(v) for k, v in first.deltas.items()
    }
    assert first.comparison is not None
    for key, delta in first.deltas.items():
        now, then = first[key], first.comparison[key]
        if isinstance(now, Decimal) and isinstance(then, Decimal):
            assert type(delta) is Decimal and delta == now - then, key  # exact, no float
    assert second.to_dict()["comparison"]["deltas"] == first.to_dict()["comparison"]["deltas"]


# -- item 4: one Redis, two databases -------------------------------------------------------


@pytest.fixture(scope="module")
def twin_databases(stack: LocalStack, redis_url: str) -> tuple[Dashboard, Dashboard]:
    """A dashboard database and a copy of it (CREATE DATABASE ... TEMPLATE): the same schema
    names, organization ids and even deployment id; then one order more in the copy."""
    original = build_dashboard(stack, redis_url, seed=43, orgs=1)
    name = f"twin_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.conninfo("postgres"), autocommit=True) as conn:
        source = psycopg.conninfo.conninfo_to_dict(original.settings.conninfo)["dbname"]
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(str(source))
            )
        )
    twin = Dashboard(
        Settings(
            conninfo=stack.conninfo(name),
            source_schema=original.settings.source_schema,
            schema=original.settings.schema,
            redis_url=redis_url,
        ),
        original.organization_ids,
        original.empty_organization_id,
    )
    add_order_now(twin, twin.organization_ids[0])
    return original, twin


def test_two_databases_with_the_same_names_never_share_values(
    twin_databases: tuple[Dashboard, Dashboard], redis_client: redis.Redis
) -> None:
    original, twin = twin_databases
    org = original.organization_ids[0]
    today = business_today(original.settings)
    window = (today - 29 * DAY, today)
    with Client(settings=original.settings) as a, Client(settings=twin.settings) as b:
        patient_cache(a)
        patient_cache(b)
        assert a.cache_namespace() != b.cache_namespace()
        for client, dashboard, other in ((a, original, b), (b, twin, a)):
            client.get_metrics(org, *window)  # computed and cached: the other reads next
            result = other.get_metrics(org, *window)
            other_dashboard = twin if dashboard is original else original
            with other_dashboard.connect() as conn:
                assert_matches_naive(conn, other_dashboard.settings, result)
        results = [c.get_metrics(org, *window) for c in (a, b)]
        assert [r.source for r in results] == ["cache", "cache"]
        assert results[1]["orders_count"] == results[0]["orders_count"] + 1  # type: ignore[operator]
        series = [c.get_series(org, "orders_count", *window) for c in (a, b, a, b)]
        assert [s.source for s in series] == ["computed", "computed", "cache", "cache"]
        assert series[3].points[-1][1] == series[2].points[-1][1] + 1  # type: ignore[operator]


# -- item 7: single flight after an invalidation ---------------------------------------------


@pytest.fixture
def writable(scratch_dashboard: Dashboard, redis_client: redis.Redis) -> Iterator[Dashboard]:
    yield scratch_dashboard


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_call_after_an_invalidation_never_joins_an_older_computation(
    writable: Dashboard, cache: bool
) -> None:
    """The leader reads the database, then is held; the test commits a write and invalidates;
    a follower started only then must get the post-write value, not the leader's."""
    org = writable.organization_ids[0]
    today = business_today(writable.settings)
    window = (today - 6 * DAY, today)
    leader_read, release = threading.Event(), threading.Event()
    with Client(settings=writable.settings, cache=cache) as client:
        if cache:
            patient_cache(client, lock_seconds=20.0)
        original = client.computer.compute
        first = [True]

        def compute(request: MetricsRequest) -> DashboardMetrics:
            result = original(request)
            if first:  # the leader: it has read the database; hold it there
                first.pop()
                leader_read.set()
                release.wait(30)
            return result

        client.computer.compute = compute  # type: ignore[method-assign]
        with ThreadPoolExecutor(2) as threads:
            leader = threads.submit(client.get_metrics, org, *window)
            assert leader_read.wait(30)
            add_order_now(writable, org)
            client.invalidate_org(org)
            follower = threads.submit(client.get_metrics, org, *window)
            try:
                result = follower.result(timeout=10)
            finally:
                release.set()
            before = leader.result(timeout=30)
    with writable.connect() as conn:
        assert_matches_naive(conn, writable.settings, result)
    assert result.source == "computed"
    assert result["orders_count"] == before["orders_count"] + 1  # type: ignore[operator]
