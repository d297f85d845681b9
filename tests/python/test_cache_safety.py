"""Issue 8 §4 and §5: a cache stampede runs the query once, and a cached value is served only
to the exact request, configuration and generation that computed it.

The values written here by hand follow the cache's format (``dq3|gen_all|gen_org|crc|json``,
the JSON being ``DashboardMetrics.to_document``'s array) so that each test breaks exactly one
thing and the others still look valid.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from dashquery import Client, DashboardMetrics
from dashquery.cache.values import Lookup, MetricsCache, cache_namespace
from dashquery.catalog import CONTRACT_VERSION
from dashquery.read.request import MetricsRequest
from tests.python.faults_support import numbers, patient_cache
from tests.python.helpers import Dashboard, assert_matches_naive

RANGE = ("2024-07-01", "2025-06-30")


@pytest.fixture
def client(dashboard: Dashboard, redis_client: redis.Redis) -> Iterator[Client]:
    with Client(settings=dashboard.settings) as client:
        patient_cache(client)
        yield client


def truth(dashboard: Dashboard, org: uuid.UUID, date_from: str, date_to: str) -> dict[str, Any]:
    """The §3 numbers computed without any cache and checked against the naive query."""
    with Client(settings=dashboard.settings, cache=False) as plain, dashboard.connect() as conn:
        result = plain.compute(org, date_from, date_to)
        assert_matches_naive(conn, dashboard.settings, result)
    return numbers(result)


def key_of(client: Client, org: uuid.UUID, date_from: str, date_to: str) -> str:
    assert client.cache is not None
    return client.cache.key(MetricsRequest.parse(org, date_from, date_to)).value


def rebuild(
    raw: bytes,
    *,
    generations: tuple[bytes, bytes] | None = None,
    edit: Callable[[list[Any]], None] | None = None,
    payload: bytes | None = None,
) -> bytes:
    """The value with other generations or payload, and a checksum that matches."""
    fmt, gen_all, gen_org, _checksum, original = raw.split(b"|", 4)
    if generations:
        gen_all, gen_org = generations
    payload = original if payload is None else payload
    if edit:
        data = json.loads(payload)
        edit(data)
        payload = json.dumps(data, separators=(",", ":")).encode()
    return b"|".join([fmt, gen_all, gen_org, b"%08x" % zlib.crc32(payload), payload])


def current_generations(
    client: Client, redis_client: redis.Redis, org: uuid.UUID
) -> tuple[bytes, bytes]:
    assert client.cache is not None
    keys = [client.cache.generation_key(None), client.cache.generation_key(org)]
    gen_all, gen_org = redis_client.mget(keys)
    return gen_all or b"0", gen_org or b"0"


# -- §4 stampede -------------------------------------------------------------------------------


def count_computes(clients: list[Client], calls: list[MetricsRequest]) -> None:
    """Count every database computation; each holds the miss open for 0.3 s so that all
    threads pile up behind the first one.

    The caches get patient timeouts: this is about single flight, not about a Redis reply
    that misses the 50 ms socket timeout on a loaded machine (which rightly opens the breaker
    and lets every process compute: test_faults.py) or a computation that outlasts the lock.
    """
    lock = threading.Lock()
    for client in clients:
        patient_cache(client, socket_timeout=2.0, lock_seconds=20.0)
        original = client.computer.compute

        def compute(request: MetricsRequest, original: Any = original) -> DashboardMetrics:
            with lock:
                calls.append(request)
            threading.Event().wait(0.3)
            return original(request)

        client.computer.compute = compute  # type: ignore[method-assign]


@pytest.mark.parametrize("n_clients", [1, 4], ids=["one-client", "four-clients"])
def test_a_stampede_of_misses_computes_once(
    dashboard: Dashboard, redis_client: redis.Redis, n_clients: int
) -> None:
    """100 threads miss the same key together; one shared Client settles it in-process, four
    Clients (as four processes would) through the Redis lock."""
    org = dashboard.organization_ids[0]
    expected = truth(dashboard, org, *RANGE)
    clients = [Client(settings=dashboard.settings) for _ in range(n_clients)]
    calls: list[MetricsRequest] = []
    count_computes(clients, calls)
    start = threading.Barrier(100)

    def read(i: int) -> DashboardMetrics:
        start.wait()
        return clients[i % n_clients].get_metrics(org, *RANGE)

    try:
        with ThreadPoolExecutor(100) as threads:
            results = list(threads.map(read, range(100)))
    finally:
        for client in clients:
            client.close()
    assert all(client.cache and client.cache.available for client in clients), "breaker opened"
    assert len(calls) == 1
    assert all(numbers(result) == expected for result in results)
    assert len({result.generated_at for result in results}) == 1, "one computation for all"


def test_a_miss_that_loses_the_race_serves_the_winners_value(
    dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """B misses; A computes, stores and releases the lock; only then does B take the lock. B
    must serve A's value rather than compute again: the window a stampede hits only by luck
    on a loaded machine, made certain here by replaying B's early miss."""
    org = dashboard.organization_ids[1]
    with Client(settings=dashboard.settings) as a, Client(settings=dashboard.settings) as b:
        patient_cache(a)
        calls: list[MetricsRequest] = []
        count_computes([b], calls)
        assert b.cache is not None
        real_lookup = b.cache.lookup
        misses = [True]

        def lookup(request: MetricsRequest) -> Lookup:
            found = real_lookup(request)
            if misses:  # B's first lookup happened before A stored its value
                misses.pop()
                return Lookup(None, found.generations)
            return found

        b.cache.lookup = lookup  # type: ignore[method-assign]
        winner = a.get_metrics(org, *RANGE)
        result = b.get_metrics(org, *RANGE)
    assert calls == [] and not misses, "B computed again"
    assert result.source == "cache" and numbers(result) == numbers(winner)


# -- §5 values never served --------------------------------------------------------------------


def payload_start(raw: bytes) -> int:
    return len(raw) - len(raw.split(b"|", 4)[4])


def set_orders_count(document: list[Any], value: Any) -> None:
    document[5][0] = value  # the first count: orders_count (METRIC_KEYS order)


def flip(raw: bytes, index: int, bit: int) -> bytes:
    return raw[:index] + bytes([raw[index] ^ (1 << bit)]) + raw[index + 1 :]


def test_corrupt_values_are_recomputed(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org = dashboard.organization_ids[0]
    expected = truth(dashboard, org, *RANGE)
    key = key_of(client, org, *RANGE)
    client.get_metrics(org, *RANGE)
    raw = redis_client.get(key)
    assert isinstance(raw, bytes) and client.get_metrics(org, *RANGE).source == "cache"
    payload_at = payload_start(raw)
    corrupt = {
        "garbage": b"\x00\xffnot a cached value",
        "empty": b"",
        "half": raw[: len(raw) // 2],
        "last byte lost": raw[:-1],
        "payload bit flipped": flip(raw, (payload_at + len(raw)) // 2, 3),
        "older format": b"dq0" + raw[3:],
        "a number missing": rebuild(raw, edit=lambda data: data[6].pop()),
        "a count as text": rebuild(raw, edit=lambda data: set_orders_count(data, "7")),
        "a count as a float": rebuild(raw, edit=lambda data: set_orders_count(data, 7.0)),
        "a count as a bool": rebuild(raw, edit=lambda data: set_orders_count(data, True)),
        "a decimal as a JSON number": rebuild(raw, edit=lambda data: data[6].__setitem__(0, 1.5)),
        "a decimal NaN": rebuild(raw, edit=lambda data: data[6].__setitem__(0, "NaN")),
        "an empty list": rebuild(raw, payload=b"[]"),
        "a dict": rebuild(raw, payload=b'{"orders_count": 1}'),
        "not JSON": rebuild(raw, payload=b"{orders_count: 1"),
    }
    for name, value in corrupt.items():
        redis_client.set(key, value)
        result = client.get_metrics(org, *RANGE)
        assert (result.source, numbers(result)) == ("computed", expected), name


def test_no_single_bit_flip_is_served_wrong(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """Every bit of the header and a spread of payload bytes: a flipped value is refused, or
    (a hex digit changing case in the checksum) served with exactly the right numbers."""
    org = dashboard.organization_ids[0]
    expected = truth(dashboard, org, *RANGE)
    request = MetricsRequest.parse(org, *RANGE)
    key = key_of(client, org, *RANGE)
    client.get_metrics(org, *RANGE)
    raw = redis_client.get(key)
    assert isinstance(raw, bytes) and client.cache is not None
    payload_at = payload_start(raw)
    positions = [*range(payload_at), *range(payload_at, len(raw), max(1, len(raw) // 97))]
    for index in positions:
        for bit in range(8):
            redis_client.set(key, flip(raw, index, bit))
            result = client.cache.lookup(request).result
            where = f"byte {index} bit {bit}"
            if index >= payload_at:
                assert result is None, where
            else:
                assert result is None or numbers(result) == expected, where


def test_values_of_older_contracts_and_generations_are_never_served(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """Each planted value is valid except for its contract version or generations, and claims
    1,000,000 orders, so serving it would be visible."""
    org = dashboard.organization_ids[0]
    expected = truth(dashboard, org, *RANGE)
    key = key_of(client, org, *RANGE)
    client.get_metrics(org, *RANGE)
    client.invalidate_org(org)
    client.invalidate_all()
    client.get_metrics(org, *RANGE)
    raw = redis_client.get(key)
    assert isinstance(raw, bytes)
    gen_all, gen_org = current_generations(client, redis_client, org)

    def planted(generations: tuple[bytes, bytes]) -> bytes:
        return rebuild(raw, generations=generations, edit=lambda d: set_orders_count(d, 10**6))

    old_namespace = f":v{CONTRACT_VERSION}:"
    assert key.count(old_namespace) == 1
    redis_client.set(key.replace(old_namespace, ":v0:"), planted((gen_all, gen_org)))
    redis_client.delete(key)
    assert client.get_metrics(org, *RANGE).source == "computed"
    for generations in (
        (gen_all, b"%d" % (int(gen_org) - 1)),
        (b"%d" % (int(gen_all) - 1), gen_org),
        (b"0", b"0"),
        (gen_all, b"%d" % (int(gen_org) + 1)),
    ):
        redis_client.set(key, planted(generations))
        result = client.get_metrics(org, *RANGE)
        assert (result.source, numbers(result)) == ("computed", expected), generations
    redis_client.set(key, planted((gen_all, gen_org)))
    assert client.get_metrics(org, *RANGE)["orders_count"] == 10**6, "the planting is valid"


def test_another_time_zone_never_reads_the_value(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """A client of another zone can't read these views at all now (Misconfigured: they were
    built for this zone), but its namespace differs anyway, and a cache configured for
    another zone refuses this zone's value even under its own key."""
    org = dashboard.organization_ids[0]
    client.get_metrics(org, *RANGE)
    sydney_key = key_of(client, org, *RANGE)
    identity = client.computer.identity()
    utc_settings = dataclasses.replace(dashboard.settings, timezone="UTC")
    assert cache_namespace(identity, utc_settings) != cache_namespace(identity, client.settings)
    assert client.cache is not None
    utc = MetricsCache(
        client.settings.redis_url, namespace=client.cache.namespace, timezone="UTC",
        socket_timeout=0.5,
    )  # fmt: skip
    try:
        request = MetricsRequest.parse(org, *RANGE)
        assert utc.key(request).value == sydney_key and utc.lookup(request).generations
        assert utc.lookup(request).result is None, "a Sydney value served as UTC"
    finally:
        utc.close()


def test_organizations_never_read_each_others_values(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    a, b = dashboard.organization_ids[:2]
    expected = {org: truth(dashboard, org, *RANGE) for org in (a, b)}
    assert expected[a] != expected[b]
    client.invalidate_org(b)  # B's generation differs from A's: rewrite it to match below
    client.get_metrics(a, *RANGE)
    raw = redis_client.get(key_of(client, a, *RANGE))
    assert isinstance(raw, bytes)
    as_if_b = rebuild(raw, generations=current_generations(client, redis_client, b))
    redis_client.set(key_of(client, b, *RANGE), as_if_b)
    result = client.get_metrics(b, *RANGE)
    assert (result.source, result.organization_id) == ("computed", b)
    assert numbers(result) == expected[b]
    # Nor another range's value of the same organization.
    other = (dt.date(2025, 1, 1), dt.date(2025, 3, 31))
    redis_client.set(key_of(client, a, *map(str, other)), raw)
    assert client.get_metrics(a, *other).source == "computed"
