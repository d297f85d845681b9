"""Cache warming: compute the ranges dashboards open with, for the organizations in use.

A warm fills Redis with the client's TTL (5 minutes by default), so on its own it only
helps the first few minutes after it runs; what lasts is that it also pulls the
materialized views' pages of every active organization into PostgreSQL's cache after the
nightly build. ``force=True`` recomputes keys that are already cached, restarting their
TTL, for a schedule that keeps the common ranges hot all day (docs/OPERATIONS.md).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.errors import DashqueryError, Unavailable
from dashquery.ops.pg_errors import pg_error
from dashquery.read.request import MetricsRequest

Range = tuple[dt.date, dt.date]

# Organizations "in use": any activity row in the window. activities has no index on
# created_at; one sequential scan per warm is cheaper than an index the app pays for on
# every insert.
_ACTIVE_ORGANIZATIONS = sql.SQL(
    "select distinct organization_id from {}.activities"
    " where created_at >= now() - make_interval(days => %s) order by 1"
)


def common_ranges(today: dt.date) -> dict[str, Range]:
    """The dashboard's preset ranges ending ``today`` (a business day), both ends included."""
    return {
        "today": (today, today),
        "this_week": (today - dt.timedelta(days=today.weekday()), today),  # Monday..today
        "this_month": (today.replace(day=1), today),
        "last_30_days": (today - dt.timedelta(days=29), today),
    }


def active_organizations(settings: Settings, days: int) -> list[uuid.UUID]:
    """Organizations with rows in ``activities`` during the last ``days`` days."""
    query = _ACTIVE_ORGANIZATIONS.format(sql.Identifier(settings.source_schema))
    try:
        with psycopg.connect(settings.conninfo, autocommit=True, connect_timeout=10) as conn:
            return [row[0] for row in conn.execute(query, (days,))]
    except psycopg.Error as exc:
        # e.g. no activities table: DASHQUERY_SOURCE_SCHEMA names the wrong schema
        what = f"list active organizations from {settings.source_schema}.activities"
        raise pg_error(exc, what) from exc


@dataclass(frozen=True)
class WarmFailure:
    organization_id: uuid.UUID
    range_name: str
    error: str


@dataclass(frozen=True)
class WarmReport:
    """Keys computed and stored, keys that were already cached, and failures."""

    organizations: int
    ranges: tuple[str, ...]
    computed: int
    already_cached: int
    seconds: float
    failures: tuple[WarmFailure, ...] = field(default_factory=tuple)
    cache_available: bool = True


def warm_requests(
    organization_ids: Sequence[uuid.UUID], ranges: Mapping[str, Range]
) -> dict[MetricsRequest, str]:
    """Every distinct key to warm, with the first range name that asks for it.

    Preset ranges coincide on some days (on a Monday "this week" is "today", on the 1st
    "this month" is too): such a key is warmed once.
    """
    requests: dict[MetricsRequest, str] = {}
    for org in organization_ids:
        for name, (start, end) in ranges.items():
            requests.setdefault(MetricsRequest.parse(org, start, end), name)
    return requests


def warm(
    client: Client,
    organization_ids: Sequence[uuid.UUID],
    ranges: Mapping[str, Range],
    *,
    concurrency: int = 4,
    force: bool = False,
    on_done: Callable[[], None] | None = None,
) -> WarmReport:
    """Fill the cache for every (organization, range), ``concurrency`` at a time.

    The client should have at least ``concurrency`` pool connections. One failing key is
    reported, never aborts the others.
    """
    if client.cache is None:
        raise Unavailable("the client's cache is turned off: there is nothing to warm")
    jobs = warm_requests(organization_ids, ranges)
    started = time.perf_counter()
    computed = cached = 0
    failures: list[WarmFailure] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="warm") as pool:
        futures = {
            pool.submit(_warm_one, client, request, force): (name, request)
            for request, name in jobs.items()
        }
        for future in as_completed(futures):
            name, request = futures[future]
            try:
                if future.result() == "cache":
                    cached += 1
                else:
                    computed += 1
            except DashqueryError as exc:
                failures.append(WarmFailure(request.organization_id, name, str(exc)))
            if on_done:
                on_done()
    return WarmReport(
        organizations=len(organization_ids),
        ranges=tuple(ranges),
        computed=computed,
        already_cached=cached,
        seconds=time.perf_counter() - started,
        failures=tuple(failures),
        # Redis failures never raise on the read path; the breaker is how we learn of them.
        cache_available=client.cache.available,
    )


def _warm_one(client: Client, request: MetricsRequest, force: bool) -> str:
    if not force:
        # The read path itself: a miss computes once (single-flight) and stores the result.
        return client.get_metrics(
            request.organization_id, request.date_from, request.date_to
        ).source
    assert client.cache is not None
    # Generations are read before computing, so an invalidation meanwhile still wins.
    lookup = client.cache.lookup(request)
    result = client.computer.compute(request)
    if lookup.generations is not None:
        client.cache.store(request, result, lookup.generations)
    return "computed"
