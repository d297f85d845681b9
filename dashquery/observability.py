"""Prometheus metrics for the read path and the refreshes.

prometheus_client is the de-facto standard exposition format: counters and histograms
here are scraped from whatever HTTP server the application already runs (or
``prometheus_client.start_http_server``), with no agent of our own.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Children bound once: ``.labels(...)`` costs more per call than the increment it leads to,
# and a cache hit is a few tens of microseconds in all.
CACHE_OUTCOMES = ("hit", "miss", "stale", "corrupt", "unavailable", "disabled")
READ_PATHS = ("cache", "computed")

CACHE_LOOKUPS = Counter(
    "dashquery_cache_lookups_total",
    "Cache lookups by outcome: hit, miss, stale (older generation), corrupt, unavailable,"
    " disabled (Redis memory policy unsafe).",
    ["outcome"],
)
CACHE_LOOKUP_COUNTS = {outcome: CACHE_LOOKUPS.labels(outcome) for outcome in CACHE_OUTCOMES}
REQUEST_SECONDS = Histogram(
    "dashquery_request_seconds",
    "get_metrics latency by path (cache or computed).",
    ["path"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REQUEST_SECONDS_BY_PATH = {path: REQUEST_SECONDS.labels(path) for path in READ_PATHS}
REDIS_CIRCUIT_OPEN = Gauge(
    "dashquery_redis_circuit_open", "1 while Redis is considered down and skipped."
)
VIEW_WATERMARK_AGE = Gauge(
    "dashquery_view_watermark_age_seconds",
    "Age of each materialized view's watermark, as seen by the last status check.",
    ["view"],
)
REFRESH_SECONDS = Gauge(
    "dashquery_view_refresh_seconds", "Duration of each view's last successful refresh.", ["view"]
)
REDIS_UNSAFE = Gauge(
    "dashquery_redis_unsafe",
    "1 while Redis's maxmemory policy could lose an invalidation, so the cache is not used.",
)
