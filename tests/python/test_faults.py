"""Issue 8 §1: Redis down at start, going down mid-run, frozen or slow never costs an exact
answer, costs one short timeout per breaker period (counted, not timed), logs once, and
invalidations issued meanwhile are replayed before anything is served again.

These tests stop and freeze Redis, so they run against a stack of this module's own (never
the session's); a loopback proxy slows or cuts the Redis link while the server keeps its
data. The breaker runs on a clock the test moves.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import pytest
import redis

from dashquery import Client, Settings
from dashquery.dev.stack import LocalStack, StackError
from dashquery.read.request import MetricsRequest
from tests.python.cache_support import add_order_now
from tests.python.faults_support import (
    FakeClock,
    TcpProxy,
    count_redis_round_trips,
    free_port,
    last_quarter,
    numbers,
    patient_cache,
    poll,
    private_stack,
)
from tests.python.helpers import Dashboard, assert_matches_naive, build_dashboard

BREAKER = 5.0  # MetricsCache's default breaker_seconds, which Client uses


@pytest.fixture(scope="module")
def own_stack() -> Iterator[LocalStack]:
    with private_stack("dashquery-redis-faults-") as local:
        yield local


@pytest.fixture(scope="module")
def own_dashboard(own_stack: LocalStack) -> Dashboard:
    return build_dashboard(own_stack, own_stack.env()["DASHQUERY_REDIS_URL"], seed=31, orgs=1)


@pytest.fixture
def stack(own_stack: LocalStack, own_dashboard: Dashboard) -> Iterator[LocalStack]:
    """The module's stack, Redis flushed; both servers running again after the test."""
    with redis.Redis.from_url(own_stack.env()["DASHQUERY_REDIS_URL"]) as server:
        server.flushall()
    try:
        yield own_stack
    finally:
        with suppress(StackError):
            own_stack.resume_redis()  # start() would take a paused server for a dead one
        own_stack.start()


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]


def client_with_clock(settings: Settings) -> tuple[Client, FakeClock, list[float]]:
    client = Client(settings=settings)
    clock = FakeClock()
    return client, clock, count_redis_round_trips(patient_cache(client, clock=clock))


def redis_port(stack: LocalStack) -> int:
    return int(stack.env()["DASHQUERY_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])


def test_redis_down_at_start_costs_one_attempt_per_breaker_period(
    stack: LocalStack, own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        own_dashboard.settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    request = last_quarter(own_dashboard)
    client, clock, sent = client_with_clock(settings)
    with client, own_dashboard.connect() as conn:
        first = client.get_metrics(*request)
        assert first.source == "computed"
        assert_matches_naive(conn, settings, first)
        assert len(sent) == 1 and not client.cache.available  # type: ignore[union-attr]
        for _ in range(40):
            result = client.get_metrics(*request)
            assert (result.source, result.metrics) == ("computed", first.metrics)
        client.invalidate_org(request[0])  # remembered, not sent
        assert len(sent) == 1, "no Redis command while the breaker is open"
        clock.advance(BREAKER + 0.1)
        assert client.get_metrics(*request).metrics == first.metrics
        assert len(sent) == 2, "one probe when the breaker period is over"
    assert len(redis_warnings(warnings)) == 1


def test_redis_stopped_then_restarted(
    stack: LocalStack, own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture
) -> None:
    request = last_quarter(own_dashboard)
    client, clock, sent = client_with_clock(own_dashboard.settings)
    with client, own_dashboard.connect() as conn:
        first = client.get_metrics(*request)
        assert client.get_metrics(*request).source == "cache"
        stack.stop_redis()
        before = len(sent)
        for _ in range(30):
            result = client.get_metrics(*request)
            assert (result.source, result.metrics) == ("computed", first.metrics)
        assert len(sent) == before + 1
        assert_matches_naive(conn, own_dashboard.settings, result)
        stack.start_redis()
        clock.advance(BREAKER + 0.1)
        assert client.get_metrics(*request).source == "computed"  # a restart empties Redis
        assert client.get_metrics(*request).source == "cache"
    assert len(redis_warnings(warnings)) == 1
    assert any("Redis is back" in r.getMessage() for r in warnings.records)


@pytest.mark.parametrize("fault", ["paused", "slow"])
def test_frozen_or_slow_redis_costs_one_short_timeout(
    stack: LocalStack, own_dashboard: Dashboard, warnings: pytest.LogCaptureFixture, fault: str
) -> None:
    """SIGSTOP keeps connections open but never answers; the proxy answers after 2 s."""
    request = last_quarter(own_dashboard)
    with TcpProxy(redis_port(stack)) as proxy:
        settings = dataclasses.replace(own_dashboard.settings, redis_url=proxy.redis_url)
        client, clock, sent = client_with_clock(settings)
        with client:
            first = client.get_metrics(*request)
            assert client.get_metrics(*request).source == "cache"
            if fault == "paused":
                stack.pause_redis()
            else:
                proxy.delay = 2.0
            try:
                started = time.monotonic()
                result = client.get_metrics(*request)
                elapsed = time.monotonic() - started
                before = len(sent)
                for _ in range(30):
                    assert client.get_metrics(*request).source == "computed"
                assert len(sent) == before
            finally:
                stack.resume_redis()
                proxy.heal()
            assert (result.source, numbers(result)) == ("computed", numbers(first))
            assert elapsed < 5, f"a frozen Redis held a request {elapsed:.1f} s"  # 1 timeout
            clock.advance(BREAKER + 0.1)
            again = client.get_metrics(*request)
            assert (again.source, numbers(again)) == ("cache", numbers(first))
    assert len(redis_warnings(warnings)) == 1


@pytest.mark.parametrize("scope", ["org", "all"])
def test_invalidation_during_an_outage_is_replayed_before_serving(
    stack: LocalStack, own_dashboard: Dashboard, scope: str
) -> None:
    """The entry cached before the outage survives it in Redis, but is never served again."""
    request = last_quarter(own_dashboard)
    with TcpProxy(redis_port(stack)) as proxy:
        settings = dataclasses.replace(own_dashboard.settings, redis_url=proxy.redis_url)
        client, clock, _sent = client_with_clock(settings)
        with client, redis.Redis.from_url(stack.env()["DASHQUERY_REDIS_URL"]) as server:
            client.get_metrics(*request)
            assert client.get_metrics(*request).source == "cache"
            proxy.cut()
            if scope == "org":
                client.invalidate_org(request[0])
            else:
                client.invalidate_all()
            assert not client.cache.available  # type: ignore[union-attr]
            assert client.get_metrics(*request).source == "computed"
            proxy.heal()
            clock.advance(BREAKER + 0.1)
            key = client.cache.key(MetricsRequest.parse(*request)).value  # type: ignore[union-attr]
            assert server.exists(key), "the old entry is still in Redis"
            assert client.get_metrics(*request).source == "computed"
            assert client.get_metrics(*request).source == "cache"


def test_readers_keep_answering_while_redis_goes_down_and_back(
    stack: LocalStack, own_dashboard: Dashboard
) -> None:
    """Real clock, a 0.1 s breaker, four readers looping across a stop and a start."""
    request = last_quarter(own_dashboard)
    with Client(settings=own_dashboard.settings) as client:
        patient_cache(client, breaker_seconds=0.1)
        expected = numbers(client.compute(*request))
        stop = threading.Event()
        seen: list[tuple[float, str, bool]] = []
        errors: list[BaseException] = []

        def read() -> None:
            while not stop.is_set():
                try:
                    result = client.get_metrics(*request)
                    seen.append((time.monotonic(), result.source, numbers(result) == expected))
                except BaseException as exc:  # any exception fails the test
                    errors.append(exc)

        with ThreadPoolExecutor(4) as readers:
            for _ in range(4):
                readers.submit(read)
            try:
                time.sleep(0.5)
                stack.stop_redis()
                down = time.monotonic()
                time.sleep(1.0)
                stack.start_redis()
                up = time.monotonic()
                poll(
                    lambda: any(t > up and source == "cache" for t, source, _ in seen),
                    seconds=30,
                    what="a cache hit once Redis is back",
                )
            finally:
                stop.set()
    assert not errors
    assert all(equal for _t, _source, equal in seen)
    during = [source for t, source, _ in seen if down < t < up]
    assert during.count("computed") > 4, "reads went on, computed, during the outage"


def test_an_idle_process_replays_its_invalidation_once_redis_is_back(
    stack: LocalStack, own_dashboard: Dashboard
) -> None:
    """Issue 11 item 6a: B invalidates while Redis is frozen and then makes no call at all;
    A, which cached the value before, must see the new one soon after Redis thaws: B's
    background replay sends the INCR (within B's breaker period, 5 s), not B's next read."""
    org, date_from, date_to = last_quarter(own_dashboard)
    with Client(settings=own_dashboard.settings) as a, Client(settings=own_dashboard.settings) as b:
        patient_cache(a)
        b.cache_namespace()  # B has met the database (not Redis) before the freeze
        first = a.get_metrics(org, date_from, date_to)
        assert a.get_metrics(org, date_from, date_to).source == "cache"
        add_order_now(own_dashboard, org)
        stack.pause_redis()
        try:
            b.invalidate_org(org)
        finally:
            stack.resume_redis()
        thawed = time.monotonic()
        fresh = poll(
            lambda: (r := a.get_metrics(org, date_from, date_to)).source == "computed" and r,
            seconds=15,
            what="A to see B's invalidation",
        )
        waited = time.monotonic() - thawed
    assert fresh["orders_count"] == first["orders_count"] + 1
    with own_dashboard.connect() as conn:
        assert_matches_naive(conn, own_dashboard.settings, fresh)
    assert waited < BREAKER + 2, f"replayed {waited:.1f} s after Redis came back"
