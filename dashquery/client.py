"""``Client``: the read path of contract §4-§5 — Redis first, then one hybrid statement."""

from __future__ import annotations

import threading
import time
import uuid
from types import TracebackType
from typing import Self

from dashquery.cache.flights import Flights
from dashquery.cache.values import Lookup, MetricsCache, cache_namespace
from dashquery.config import Settings
from dashquery.observability import REQUEST_SECONDS_BY_PATH
from dashquery.ops import events
from dashquery.read.compare import ComparedMetrics, comparison_request, parse_compare
from dashquery.read.compute import Computer
from dashquery.read.connection import ReadPool
from dashquery.read.request import MetricsRequest, parse_organization_id
from dashquery.read.series import Series, SeriesReader, SeriesRequest
from dashquery.result import DashboardMetrics

METRICS_TTL_SECONDS = 5 * 60  # the seeds' TTL for full metrics


class Client:
    """Thread-safe access to the dashboard metrics of every organization.

    Every setting defaults to the contract's environment variables (``Settings.from_env``).
    ``conninfo`` is a libpq string ("" = the ``PG*`` variables). ``cache=False`` turns the
    cache off entirely (tests, benchmarks of the computed path). PostgreSQL sessions run
    with JIT off (it costs more than these queries) and ``statement_timeout_ms``.
    """

    def __init__(
        self,
        *,
        conninfo: str | None = None,
        source_schema: str | None = None,
        schema: str | None = None,
        timezone: str | None = None,
        redis_url: str | None = None,
        settings: Settings | None = None,
        cache: bool = True,
        cache_ttl_seconds: float = METRICS_TTL_SECONDS,
        pool_size: int = 10,
        statement_timeout_ms: int = 5000,
        pool_timeout_seconds: float = 5.0,
        retries: int = 2,
    ) -> None:
        self.settings = settings or Settings.from_env(
            conninfo=conninfo,
            source_schema=source_schema,
            schema=schema,
            timezone=timezone,
            redis_url=redis_url,
        )
        # Keepalives, tcp_user_timeout and the statement timeout: see dashquery.read.connection.
        self.pool = ReadPool(
            self.settings.conninfo,
            pool_size=pool_size,
            statement_timeout_ms=statement_timeout_ms,
            pool_timeout_seconds=pool_timeout_seconds,
        )
        self.computer = Computer(self.settings, self.pool, retries=retries)
        self.cache: MetricsCache | None = None
        if cache:
            self.cache = MetricsCache(
                self.settings.redis_url,
                # A function: the identity is the database's (read at discovery) and changes
                # with the views' definitions, so a deploy starts a namespace of its own.
                namespace=self.cache_namespace,
                timezone=self.settings.timezone,
                ttl_seconds=cache_ttl_seconds,
            )
        self._flights: Flights[DashboardMetrics] = Flights()
        self.series = SeriesReader(self.computer, self.cache)

    def get_metrics(
        self,
        organization_id: uuid.UUID | str,
        date_from: object,
        date_to: object,
        *,
        compare: str | None = None,
    ) -> DashboardMetrics:
        """Every §3 metric for the organization over [date_from, date_to] (business days).

        ``compare="previous_period"`` or ``"previous_year"`` returns a ``ComparedMetrics``:
        the same, plus the comparison range's metrics and the deltas (see ``compare.py``).
        Raises ``InvalidQuery`` for bad arguments and ``Unavailable`` when PostgreSQL cannot
        answer; a Redis failure never raises (the result is computed instead).
        """
        request = MetricsRequest.parse(organization_id, date_from, date_to)
        mode = parse_compare(compare)
        if mode is None:
            return self._metrics(request)
        # Two ordinary requests, each cached under its own key, combined afterwards.
        previous = self._metrics(comparison_request(request, mode))
        return ComparedMetrics.combine(self._metrics(request), previous, mode)

    def get_series(
        self,
        organization_id: uuid.UUID | str,
        metric: str,
        date_from: object,
        date_to: object,
        grain: str = "day",
    ) -> Series:
        """One additive metric per day, ISO week or month of [date_from, date_to].

        Every period has a point (0 when empty); the first and last periods only sum their
        days inside the range. Cached for 15 minutes; see ``series.py``.
        """
        return self.series.get(
            SeriesRequest.parse(organization_id, metric, date_from, date_to, grain)
        )

    def cache_namespace(self) -> str:
        """The Redis key prefix of this database, deployment, view definitions and settings."""
        return cache_namespace(self.computer.identity(), self.settings)

    def _metrics(self, request: MetricsRequest) -> DashboardMetrics:
        started = time.perf_counter()
        epoch = self._flights.epoch(request.organization_id)  # before the lookup: see flights
        lookup = self.cache.lookup(request) if self.cache else Lookup(None, None)
        if lookup.result is not None:
            REQUEST_SECONDS_BY_PATH["cache"].observe(time.perf_counter() - started)
            return lookup.result
        # Threads of this process share one computation per key (request, generations,
        # epochs): never one an invalidation they come after has overtaken ...
        result = self._flights.run(
            (request, lookup.generations, epoch),
            lambda: self._compute_once_across_processes(request, lookup),
        )
        REQUEST_SECONDS_BY_PATH[result.source].observe(time.perf_counter() - started)
        return result

    def compute(
        self, organization_id: uuid.UUID | str, date_from: object, date_to: object
    ) -> DashboardMetrics:
        """The hybrid read without the cache (what a cache miss runs)."""
        return self.computer.compute(MetricsRequest.parse(organization_id, date_from, date_to))

    def _compute_once_across_processes(
        self, request: MetricsRequest, lookup: Lookup
    ) -> DashboardMetrics:
        # ... and processes share one through a short Redis lock of those generations.
        if self.cache is None or lookup.generations is None:
            return self.computer.compute(request)
        lock = self.cache.try_lock(request, lookup.generations)
        if lock is None:
            waited = self.cache.wait_for(request)
            if waited.result is not None:
                return waited.result
            return self.computer.compute(request)
        try:
            # The holder before us may have stored the value after our lookup missed.
            again = self.cache.lookup(request)
            if again.result is not None:
                return again.result
            result = self.computer.compute(request)
            self.cache.store(request, result, again.generations or lookup.generations)
            return result
        finally:
            self.cache.release(lock)

    def invalidate_org(self, organization_id: uuid.UUID | str) -> None:
        """Drop every cached result of the organization (O(1): bumps its generation).

        Never raises for Redis: an INCR that fails is retried in the background until Redis
        answers. A call that starts after this returned never gets a value computed before.
        """
        org = parse_organization_id(organization_id)
        self._flights.invalidated(org)
        if self.cache:
            self.cache.invalidate_org(org)

    def invalidate_all(self) -> None:
        """Drop every cached result (O(1): bumps the global generation); as invalidate_org."""
        self._flights.invalidated(None)
        if self.cache:
            self.cache.invalidate_all()

    def notify(
        self, organization_id: uuid.UUID | str, event: str, occurred_on: object = None
    ) -> tuple[str, ...]:
        """Data changed: drop the org's cache, queue the views a back-dated change affects.

        Returns the queued view names (none for a change dated today). See dashquery.ops.events.
        """
        return events.notify(self, organization_id, event, occurred_on)

    def close(self) -> None:
        self.pool.close()
        if self.cache:
            self.cache.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The module-level client, built from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def get_metrics(
    organization_id: uuid.UUID | str,
    date_from: object,
    date_to: object,
    *,
    compare: str | None = None,
) -> DashboardMetrics:
    """``Client.get_metrics`` on the default client (settings from the environment)."""
    return default_client().get_metrics(organization_id, date_from, date_to, compare=compare)


def get_series(
    organization_id: uuid.UUID | str,
    metric: str,
    date_from: object,
    date_to: object,
    grain: str = "day",
) -> Series:
    """``Client.get_series`` on the default client."""
    return default_client().get_series(organization_id, metric, date_from, date_to, grain)


def invalidate_org(organization_id: uuid.UUID | str) -> None:
    """``Client.invalidate_org`` on the default client."""
    default_client().invalidate_org(organization_id)


def invalidate_all() -> None:
    """``Client.invalidate_all`` on the default client."""
    default_client().invalidate_all()


def notify(
    organization_id: uuid.UUID | str, event: str, occurred_on: object = None
) -> tuple[str, ...]:
    """``Client.notify`` on the default client (see dashquery.ops.events)."""
    return default_client().notify(organization_id, event, occurred_on)
