"""Micro-benchmark of a cache hit against the floor under it: a bare Redis GET of the same
stored value, in a tight loop (issue 14 item 3: a hit should cost at most 2x that GET).

``measure_cached(client, org, date_from, date_to)`` returns a dict of figures: both loops'
mean and median per call (wall and this thread's CPU time), their ratios measured in the
same run, the load average, and a breakdown of the hit into its parts, each timed alone in
a loop of its own. The loops alternate in blocks (GET, hit, GET, hit, ...) so that drift in
the machine's load hits both alike; the medians come from calls timed one by one, a GET and
a hit side by side.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any

from dashquery.client import Client
from dashquery.observability import CACHE_LOOKUP_COUNTS, REQUEST_SECONDS_BY_PATH
from dashquery.read.request import MetricsRequest
from dashquery.result import DashboardMetrics

BLOCK = 250  # calls per block of a loop; the loops alternate block by block


def _per_call_us(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """Mean wall and thread-CPU microseconds per call of ``fn`` over ``calls`` calls."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        fn()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.thread_time() - cpu) / calls * 1e6,
    )


def _loop_us(fn: Callable[[], object], calls: int) -> float:
    for _ in range(min(calls, 200)):
        fn()
    return _per_call_us(fn, calls)[0]


def measure_cached(
    client: Client,
    organization_id: uuid.UUID | str,
    date_from: object,
    date_to: object,
    *,
    iterations: int = 5000,
    warmup: int = 500,
) -> dict[str, Any]:
    """Tight loops of ``client.get_metrics`` cache hits and of a bare ``GET`` of the value
    they read, on the client's own Redis connection pool. Raises ``RuntimeError`` when the
    client has no cache or the value is not served from it."""
    cache = client.cache
    if cache is None:
        raise RuntimeError("the client has no cache")
    request = MetricsRequest.parse(organization_id, date_from, date_to)
    key = cache.key(request).value
    redis = cache.redis

    def get() -> object:
        return redis.get(key)

    def hit() -> DashboardMetrics:
        return client.get_metrics(organization_id, date_from, date_to)

    hit()
    if hit().source != "cache" or get() is None:
        raise RuntimeError("the value is not served from the cache (is Redis safe and up?)")
    load_before = os.getloadavg()
    for _ in range(warmup):
        get()
        hit()
    loops: dict[str, list[tuple[float, float]]] = {"bare_get": [], "cached_hit": []}
    for _ in range(max(1, iterations // BLOCK)):
        loops["bare_get"].append(_per_call_us(get, BLOCK))
        loops["cached_hit"].append(_per_call_us(hit, BLOCK))
    singles: dict[str, list[float]] = {"bare_get": [], "cached_hit": []}
    for _ in range(iterations):
        for name, fn in (("bare_get", get), ("cached_hit", hit)):
            started = time.perf_counter()
            fn()
            singles[name].append((time.perf_counter() - started) * 1e6)
    sources = {hit().source for _ in range(10)}
    figures: dict[str, Any] = {}
    for name, blocks in loops.items():
        figures[name] = {
            "mean_us": round(statistics.fmean(w for w, _ in blocks), 2),
            "cpu_mean_us": round(statistics.fmean(c for _, c in blocks), 2),
            "p50_us": round(statistics.median(singles[name]), 2),
        }
    get_f, hit_f = figures["bare_get"], figures["cached_hit"]
    return {
        "iterations": iterations,
        "value_bytes": len(get() or b""),
        "bare_get": get_f,
        "cached_hit": hit_f,
        "ratio_mean": round(hit_f["mean_us"] / get_f["mean_us"], 2),
        "ratio_p50": round(hit_f["p50_us"] / get_f["p50_us"], 2),
        "ratio_cpu": round(hit_f["cpu_mean_us"] / get_f["cpu_mean_us"], 2),
        "served_from": sorted(sources),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "breakdown_us": breakdown(client, request, calls=max(1000, iterations // 2)),
    }


def breakdown(client: Client, request: MetricsRequest, *, calls: int = 2000) -> dict[str, float]:
    """Each part of a hit timed alone (mean µs per call): what the total is made of."""
    cache = client.cache
    assert cache is not None
    slot = cache._slot(request)
    redis = cache.redis
    raw = redis.get(slot.key.value)
    assert isinstance(raw, bytes)
    payload = raw.split(b"|", 4)[4]
    document = json.loads(payload)
    decoded = DashboardMetrics.from_parts(document, request.organization_id, request.date_from,
                                          request.date_to, cache.timezone, "cache")  # fmt: skip
    org, start, end = request.organization_id, request.date_from, request.date_to
    parts: dict[str, Callable[[], object]] = {
        "parse_request": lambda: MetricsRequest.parse(org, start, end),
        "flights_epoch": lambda: client._flights.epoch(org),
        "keys (namespace + memo)": lambda: cache._slot(request),
        "mget_value_and_generations": lambda: redis.mget(slot.mget),
        "bare_get": lambda: redis.get(slot.key.value),
        "breaker (guard.call of a no-op)": lambda: cache.guard.call(lambda: None, None),
        "envelope split + crc32 (new bytes only)": lambda: zlib.crc32(raw.split(b"|", 4)[4]),
        "json.loads (new bytes only)": lambda: json.loads(payload),
        "new bytes: validate + build result": lambda: DashboardMetrics.from_parts(
            document, org, start, end, cache.timezone, "cache"
        ),
        "same bytes: copy of the value decoded before": lambda: decoded.copy(),
        "counter inc": lambda: CACHE_LOOKUP_COUNTS["hit"].inc(),
        "histogram observe": lambda: REQUEST_SECONDS_BY_PATH["cache"].observe(1e-5),
        "cache.lookup (all of the above but parse/epoch/histogram)": lambda: cache.lookup(request),
        "client.get_metrics (hit)": lambda: client.get_metrics(org, start, end),
    }
    return {name: round(_loop_us(fn, calls), 2) for name, fn in parts.items()}


def main() -> None:  # pragma: no cover - a developer's entry point
    """``python -m dashquery.dev.bench_cached ORG DATE_FROM DATE_TO`` with the PG*/DASHQUERY_*
    environment of a built dashboard: prints the figures as JSON."""
    import sys

    org, date_from, date_to = sys.argv[1:4]
    with Client() as client:
        print(json.dumps(measure_cached(client, org, date_from, date_to), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
