"""Benchmark part 1: the three read paths per range, and the floors any read pays.

All three read paths run on the same data in one process, interleaved per sample (naive,
hybrid, cached for the same organization) and the ranges in turn, so drift in the machine's
load hits them alike;
the naive result of a sample is the reference its hybrid and cached results must equal.
Every hybrid read starts after the same idle gap (``BenchOptions.hybrid_idle_ms``): the
cost of a statement depends on how long the server sat idle before it, so without it each
range's hybrid figure took the duration of the naive query before it.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from rich.progress import Progress

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.dev.bench_options import PATHS, BenchOptions, BenchRange
from dashquery.dev.bench_stats import elapsed_ms, ratios, summarize
from dashquery.dev.naive import naive_metrics
from dashquery.read.request import MetricsRequest
from dashquery.result import DashboardMetrics

FLOOR_SAMPLES = 1000


def _naive_turns(samples: int, naive: int | None) -> list[bool]:
    """Which samples also run the naive query: ``naive`` of them, spread evenly."""
    n = samples if naive is None else min(naive, samples)
    return [(i * n) // samples != ((i + 1) * n) // samples for i in range(samples)]


def _differences(result: DashboardMetrics, expected: dict[str, Any]) -> list[str]:
    return sorted(key for key, value in expected.items() if result.metrics[key] != value)


def measure_latency(
    conn: psycopg.Connection[Any],
    client: Client,
    settings: Settings,
    orgs: Sequence[uuid.UUID],
    ranges: Sequence[BenchRange],
    options: BenchOptions,
    rng: random.Random,
    bar: Progress,
) -> dict[str, Any]:
    """Interleaved samples of the three paths per range; every sample whose naive query ran
    checks the hybrid and the cached results against it, key by key (``exact``)."""
    paths: dict[str, dict[str, list[float]]] = {name: {} for name in PATHS}
    hits = total = checked = 0
    mismatches: list[dict[str, Any]] = []
    turns = _naive_turns(options.samples, options.naive_samples)
    task = bar.add_task("naive / hybrid / cached reads", total=len(ranges) * options.samples)
    picks = {r.label: [rng.choice(orgs) for _ in range(options.samples)] for r in ranges}
    for r in ranges:
        first = picks[r.label][0]
        # Not measured: the first runs plan and prepare statements and fill the buffer
        # cache; the cache warm-up stores every (organization, range) read below.
        naive_metrics(conn, settings, first, r.date_from, r.date_to)
        for _ in range(2):
            client.compute(first, r.date_from, r.date_to)
        for org in dict.fromkeys(picks[r.label]):
            client.get_metrics(org, r.date_from, r.date_to)
        for name in paths:
            paths[name][r.label] = []
    # The ranges take turns, one sample each, rather than one range after another: a slow
    # minute of the shared machine then lands on every range alike, so the ratios between
    # ranges (3,650 over 1 day) compare like with like.
    for i, naive_turn in enumerate(turns):
        for r in ranges:
            org = picks[r.label][i]
            expected = None
            if naive_turn:
                t = time.perf_counter()
                expected = naive_metrics(conn, settings, org, r.date_from, r.date_to)
                paths["naive"][r.label].append(elapsed_ms(t))
            time.sleep(options.hybrid_idle_ms / 1000)  # see BenchOptions.hybrid_idle_ms
            t = time.perf_counter()
            computed = client.compute(org, r.date_from, r.date_to)
            paths["hybrid"][r.label].append(elapsed_ms(t))
            t = time.perf_counter()
            result = client.get_metrics(org, r.date_from, r.date_to)
            paths["cached"][r.label].append(elapsed_ms(t))
            hits += result.source == "cache"
            total += 1
            if expected is not None:  # checked after the clock stopped
                for path, got in (("hybrid", computed), ("cached", result)):
                    checked += 1
                    if wrong := _differences(got, expected):
                        mismatches.append(
                            {"path": path, "range": r.label, "organization": str(org),
                             "keys": wrong}
                        )  # fmt: skip
            bar.advance(task)
    stats = {
        name: {label: summarize(values) for label, values in by_range.items()}
        for name, by_range in paths.items()
    }
    return {
        "ranges": [r.to_dict() for r in ranges],
        "hybrid_method": (
            f"Client.compute (a cache miss's statement and result), each after"
            f" {options.hybrid_idle_ms:g} ms without any read"
        ),
        "stats_ms": stats,
        "ratios": {
            "naive_over_hybrid": ratios(stats["naive"], stats["hybrid"]),
            "hybrid_over_cached": ratios(stats["hybrid"], stats["cached"]),
        },
        "cached_hit_rate": hits / total if total else 0.0,
        "exact": {
            "against": "dashquery.dev.naive (the contract's query), every key compared",
            "checked": checked,
            "all_exact": checked > 0 and not mismatches,
            "mismatches": mismatches[:20],
            "mismatch_count": len(mismatches),
        },
        "samples_ms": {
            name: {label: [round(v, 4) for v in values] for label, values in by_range.items()}
            for name, by_range in paths.items()
        },
    }


def measure_floors(client: Client, org: uuid.UUID, r: BenchRange, bar: Progress) -> dict[str, Any]:
    """What any read pays at least: one Redis GET of a cached value's size, one pooled
    ``SELECT 1``."""
    task = bar.add_task("floors (Redis GET, SELECT 1)", total=2 * FLOOR_SAMPLES)
    floors: dict[str, Any] = {}
    if client.cache is not None:
        client.get_metrics(org, r.date_from, r.date_to)
        cached = client.cache.key(MetricsRequest.parse(org, r.date_from, r.date_to)).value
        size = client.cache.redis.strlen(cached) or 2048
        key = f"dashquery-bench:floor:{uuid.uuid4().hex}"
        client.cache.redis.set(key, os.urandom(size), ex=600)
        try:
            redis_ms = []
            for _ in range(FLOOR_SAMPLES):
                t = time.perf_counter()
                client.cache.redis.get(key)
                redis_ms.append(elapsed_ms(t))
                bar.advance(task)
        finally:
            client.cache.redis.delete(key)
        floors["redis_get"] = summarize(redis_ms) | {"value_bytes": size}
    pg_ms = []
    for _ in range(FLOOR_SAMPLES):
        t = time.perf_counter()
        with client.pool.connection() as conn:
            conn.execute("select 1").fetchone()
        pg_ms.append(elapsed_ms(t))
        bar.advance(task)
    floors["pg_select_1"] = summarize(pg_ms) | {"includes": "pool checkout and return"}
    return floors
