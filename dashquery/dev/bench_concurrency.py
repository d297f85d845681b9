"""Benchmark part 3: many client threads sharing one Client, back to back."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from rich.progress import Progress

from dashquery.client import Client
from dashquery.dev.bench_options import BenchOptions, common_ranges
from dashquery.dev.bench_stats import elapsed_ms, summarize


def measure_concurrency(
    client: Client,
    orgs: Sequence[uuid.UUID],
    today: dt.date,
    options: BenchOptions,
    bar: Progress,
) -> dict[str, Any]:
    """``clients`` threads share ``client`` and ask for the common ranges, back to back."""
    presets = list(common_ranges(today).values())
    # A cold start, so the hit rate includes the misses that fill the cache (O(1) per org).
    for org in orgs:
        client.invalidate_org(org)
    latencies: list[list[float]] = [[] for _ in range(options.clients)]
    hits = [0] * options.clients
    errors = [0] * options.clients
    start = threading.Barrier(options.clients + 1)
    deadline = 0.0

    def worker(index: int) -> None:
        rng = random.Random(f"{options.seed}:{index}")
        start.wait()
        while time.perf_counter() < deadline:
            date_from, date_to = rng.choice(presets)
            t = time.perf_counter()
            try:
                result = client.get_metrics(rng.choice(orgs), date_from, date_to)
            except Exception:  # counted, never fatal: the report shows the error count
                errors[index] += 1
                continue
            latencies[index].append(elapsed_ms(t))
            hits[index] += result.source == "cache"

    task = bar.add_task(f"{options.clients} clients", total=options.seconds)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(options.clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline = began + options.seconds
    start.wait()
    while (now := time.perf_counter()) < deadline:
        bar.update(task, completed=now - began)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    bar.update(task, completed=options.seconds)
    flat = [ms for per_thread in latencies for ms in per_thread]
    return {
        "model": (
            f"{options.clients} threads in one process sharing one Client (pool_size"
            f" {client.pool.max_size}), closed loop without think time, cold cache at start"
        ),
        "clients": options.clients,
        "seconds": round(elapsed, 3),
        "requests": len(flat),
        "errors": sum(errors),
        "throughput_rps": len(flat) / elapsed if elapsed > 0 else 0.0,
        "latency_ms": summarize(flat),
        "hit_rate": sum(hits) / len(flat) if flat else 0.0,
        "ranges": {name: [str(a), str(b)] for name, (a, b) in common_ranges(today).items()},
    }
