"""Issue 14 item 3: the compact cache format (dq3, contract version 4) and the reuse of a
value decoded before. A value in the old format is never served; reused bytes are still
checked against the current generations on every read; every hit is an object of its own.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from dashquery import Client, DashboardMetrics
from dashquery.catalog import CONTRACT_VERSION, METRIC_KEYS
from dashquery.read.request import MetricsRequest
from dashquery.result import _INT_KEYS, _NUMBER_KEYS
from tests.python.cache_support import typed
from tests.python.faults_support import numbers, patient_cache
from tests.python.helpers import Dashboard

RANGE = ("2024-07-01", "2025-06-30")


@pytest.fixture
def client(dashboard: Dashboard, redis_client: redis.Redis) -> Iterator[Client]:
    with Client(settings=dashboard.settings) as client:
        patient_cache(client)
        yield client


def cached_raw(client: Client, redis_client: redis.Redis, org: uuid.UUID) -> tuple[str, bytes]:
    assert client.cache is not None
    key = client.cache.key(MetricsRequest.parse(org, *RANGE)).value
    computed = client.get_metrics(org, *RANGE)
    assert computed.source == "computed" and client.get_metrics(org, *RANGE).source == "cache"
    raw = redis_client.get(key)
    assert isinstance(raw, bytes)
    return key, raw


def test_the_document_round_trips_to_the_same_types_and_values(
    client: Client, dashboard: Dashboard
) -> None:
    computed = client.compute(dashboard.organization_ids[0], *RANGE)
    document = json.loads(json.dumps(computed.to_document()))
    back = DashboardMetrics.from_document(document, source="computed")
    assert typed(back) == typed(computed) and back.to_dict() == computed.to_dict()
    assert list(back.metrics) == list(METRIC_KEYS)
    assert len(document[5]) > len(_INT_KEYS) and len(document[6]) == len(_NUMBER_KEYS)
    assert all(type(v) is str or v is None for v in document[6]), "decimals as exact strings"


def test_a_value_in_the_old_format_is_never_served(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """A dq2 value (the dict document of contract version 3) planted under the current key
    with the current generations and a valid checksum, claiming 1,000,000 orders."""
    org = dashboard.organization_ids[0]
    key, raw = cached_raw(client, redis_client, org)
    assert f":v{CONTRACT_VERSION}:" in key and CONTRACT_VERSION == "4"
    _fmt, gen_all, gen_org, _crc, _payload = raw.split(b"|", 4)
    result = client.get_metrics(org, *RANGE)
    old = DashboardMetrics.to_dict(result) | {"orders_count": 10**6, "source": "computed"}
    for name in METRIC_KEYS:
        if isinstance(result.metrics[name], Decimal):
            old[name] = str(result.metrics[name])
    payload = json.dumps(old, separators=(",", ":")).encode()
    for fmt in (b"dq2", b"dq3"):  # dq3 with a dict inside is no better
        redis_client.set(key, b"|".join([fmt, gen_all, gen_org, b"%08x" % zlib.crc32(payload),
                                         payload]))  # fmt: skip
        served = client.get_metrics(org, *RANGE)
        assert served.source == "computed" and served["orders_count"] != 10**6, fmt


def test_reused_bytes_are_refused_once_the_generation_moves(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    """The hit's bytes stay in Redis untouched; another process INCRs the organization's
    generation (as its invalidate_org would): the next read must compute, not reuse."""
    org = dashboard.organization_ids[0]
    key, raw = cached_raw(client, redis_client, org)
    assert client.cache is not None
    redis_client.incr(client.cache.generation_key(org))
    assert redis_client.get(key) == raw
    assert client.get_metrics(org, *RANGE).source == "computed"
    redis_client.set(key, raw)  # the old bytes back: still under the old generation
    assert client.get_metrics(org, *RANGE).source == "computed"


def test_new_bytes_at_the_same_key_are_decoded_again(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org = dashboard.organization_ids[0]
    key, raw = cached_raw(client, redis_client, org)
    fmt, gen_all, gen_org, _crc, payload = raw.split(b"|", 4)
    document = json.loads(payload)
    document[5][0] = 10**6  # orders_count
    changed = json.dumps(document, separators=(",", ":")).encode()
    redis_client.set(key, b"|".join([fmt, gen_all, gen_org, b"%08x" % zlib.crc32(changed),
                                     changed]))  # fmt: skip
    assert client.get_metrics(org, *RANGE)["orders_count"] == 10**6
    redis_client.set(key, raw[:-1] + b" ")  # same length, bad checksum: refused, not reused
    assert client.get_metrics(org, *RANGE).source == "computed"


def test_every_hit_is_an_object_of_its_own(
    client: Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org = dashboard.organization_ids[0]
    cached_raw(client, redis_client, org)
    first = client.get_metrics(org, *RANGE)
    expected = numbers(first)
    first.metrics["orders_count"] = -1  # type: ignore[index]
    first.metrics["jobs_by_status"]["completed"] = -1  # type: ignore[index]
    first.freshness.pop("orders")  # type: ignore[attr-defined]
    second = client.get_metrics(org, *RANGE)
    assert second.source == "cache" and second is not first
    assert numbers(second) == expected and "orders" in second.freshness
