"""The Redis cache of ``DashboardMetrics``: generation-scoped keys, validated values, a
circuit breaker, and single-flight on misses.

Keys: ``{namespace}:m:{org}:{from}:{to}`` where the namespace holds the contract version,
both schemas and the time zone, so a result is only ever served to the configuration that
computed it. Invalidation never touches those keys: ``invalidate_org`` and
``invalidate_all`` INCR a generation counter (O(1), never KEYS or SCAN), and a value is only
served when the generations stored in it equal the current ones, read in the same MGET.
Superseded values simply expire with their TTL.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashquery.observability import CACHE_LOOKUPS, REDIS_CIRCUIT_OPEN
from dashquery.request import MetricsRequest
from dashquery.result import DashboardMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

_FORMAT = b"dq1"
GEN_ALL_KEY = "dq:gen:all"
# Deleting the lock only if we still own it: KEYS[1] - lock key, ARGV[1] - our token.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def org_generation_key(organization_id: uuid.UUID) -> str:
    return f"dq:gen:org:{organization_id}"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where one request's result lives, and its single-flight lock."""

    value: str
    lock: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache read: the result if valid, and the generations to store a new one under."""

    result: DashboardMetrics | None
    generations: tuple[bytes, bytes] | None


class MetricsCache:
    """Redis behind a circuit breaker: a dead or slow Redis costs one short timeout, then
    nothing until ``breaker_seconds`` have passed; the read path just computes.

    Invalidations that fail while Redis is down are remembered and replayed as soon as it
    answers again; those lost with the process are bounded by the TTL.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        timezone: str,
        ttl_seconds: float = 300.0,
        ttl_jitter: float = 0.1,
        socket_timeout: float = 0.05,
        breaker_seconds: float = 5.0,
        lock_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.namespace = namespace
        self.timezone = timezone
        self.ttl_seconds = ttl_seconds
        self.ttl_jitter = ttl_jitter
        self.breaker_seconds = breaker_seconds
        self.lock_seconds = lock_seconds
        self.clock = clock
        self._release_lock = self.redis.register_script(_RELEASE_LOCK)
        self._state_lock = threading.Lock()
        self._open_until = 0.0
        # Generation keys whose INCR failed -> the sequence number of the latest failure.
        self._pending: dict[str, int] = {}
        self._pending_seq = 0

    def key(self, request: MetricsRequest) -> CacheKey:
        value = (
            f"{self.namespace}:m:{request.organization_id}:{request.date_from}:{request.date_to}"
        )
        return CacheKey(
            value=value,
            lock=value + ":lock",
        )

    # -- circuit breaker -------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.clock() >= self._open_until

    def _call(self, operation: Callable[[], T], default: T) -> T:
        if not self.available:
            return default
        try:
            if self._pending:
                # Invalidations missed while Redis was unreachable go first, so that the call
                # which finds Redis back can never serve a value they cover.
                self._replay_pending()
            value = operation()
        except redis.RedisError as exc:
            with self._state_lock:
                was_closed = self._open_until == 0.0
                self._open_until = self.clock() + self.breaker_seconds
            REDIS_CIRCUIT_OPEN.set(1)
            if was_closed:
                log.warning(
                    "Redis unavailable (%s); serving computed results for %.0f s before retrying",
                    exc,
                    self.breaker_seconds,
                )
            return default
        if self._open_until:
            self._recovered()
        return value

    def _recovered(self) -> None:
        with self._state_lock:
            if not self._open_until:
                return
            self._open_until = 0.0
        REDIS_CIRCUIT_OPEN.set(0)
        log.warning("Redis is back; using the cache again")

    def _remember_invalidation(self, generation_key: str) -> None:
        with self._state_lock:
            self._pending_seq += 1
            self._pending[generation_key] = self._pending_seq

    def _replay_pending(self) -> None:
        """INCR every generation whose invalidation failed; raises RedisError if Redis can't.

        An entry is forgotten only once its INCR succeeded and no newer failure of the same
        key came in meanwhile; replaying one twice merely invalidates twice.
        """
        with self._state_lock:
            pending = dict(self._pending)
        pipe = self.redis.pipeline(transaction=False)
        for generation_key in pending:
            pipe.incr(generation_key)
        pipe.execute()
        with self._state_lock:
            for generation_key, seq in pending.items():
                if self._pending.get(generation_key) == seq:
                    del self._pending[generation_key]
        log.warning("replayed %d invalidation(s) missed while Redis was unavailable", len(pending))

    # -- values ----------------------------------------------------------------------

    def lookup(self, request: MetricsRequest) -> Lookup:
        key = self.key(request)

        def decode(document: Any) -> DashboardMetrics:
            result = DashboardMetrics.from_dict(document)
            if (
                result.organization_id != request.organization_id
                or result.date_from != request.date_from
                or result.date_to != request.date_to
                or result.timezone != self.timezone
            ):
                raise ValueError("value belongs to another request")
            return result.with_source("cache")

        result, generations, outcome = self.read(
            key.value, request.organization_id, _FORMAT, decode
        )
        CACHE_LOOKUPS.labels(outcome).inc()
        return Lookup(result, generations)

    def store(
        self, request: MetricsRequest, result: DashboardMetrics, generations: tuple[bytes, bytes]
    ) -> None:
        self.write(
            self.key(request).value, _FORMAT, result.to_dict(), generations, self.ttl_seconds
        )

    def read(
        self,
        key: str,
        organization_id: uuid.UUID,
        fmt: bytes,
        decode: Callable[[Any], T],
    ) -> tuple[T | None, tuple[bytes, bytes] | None, str]:
        """One MGET of a value and the generations guarding it, the envelope checked.

        Returns the decoded value (None unless it is intact, of format ``fmt``, stored under
        the current generations, and accepted by ``decode``, which raises ``ValueError``,
        ``KeyError`` or ``TypeError`` for anything else), the generations to store a new
        value under (None while Redis is unavailable) and the outcome: hit, miss, stale,
        corrupt or unavailable.
        """
        keys = [key, GEN_ALL_KEY, org_generation_key(organization_id)]
        raw = self._call(lambda: self.redis.mget(keys), None)
        if raw is None:
            return None, None, "unavailable"
        value, gen_all, gen_org = raw
        generations = (gen_all or b"0", gen_org or b"0")
        if value is None:
            return None, generations, "miss"
        try:
            stored_fmt, stored_all, stored_org, checksum, payload = value.split(b"|", 4)
            if stored_fmt != fmt or int(checksum, 16) != zlib.crc32(payload):
                raise ValueError("bad header or checksum")
            if (stored_all, stored_org) != generations:
                return None, generations, "stale"
            return decode(json.loads(payload)), generations, "hit"
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("discarding a corrupt cache value at %s: %s", key, exc)
            return None, generations, "corrupt"

    def write(
        self,
        key: str,
        fmt: bytes,
        document: Any,
        generations: tuple[bytes, bytes],
        ttl_seconds: float,
    ) -> None:
        """Store ``document`` as JSON in a checksummed envelope tagged with the generations
        it was computed under, expiring after ``ttl_seconds`` ± the jitter."""
        payload = json.dumps(document, separators=(",", ":")).encode()
        value = b"|".join([fmt, *generations, b"%08x" % zlib.crc32(payload), payload])
        ttl = ttl_seconds * (1 + random.uniform(-self.ttl_jitter, self.ttl_jitter))
        self._call(lambda: self.redis.set(key, value, px=int(ttl * 1000)), None)

    # -- single flight ---------------------------------------------------------------

    def try_lock(self, request: MetricsRequest) -> str | None:
        """A short Redis lock so one process computes a missing key; None if another has it.

        When Redis is unavailable everyone "gets" the lock: computing is always safe.
        """
        token = uuid.uuid4().hex
        got = self._call(
            lambda: self.redis.set(
                self.key(request).lock, token, nx=True, px=int(self.lock_seconds * 1000)
            ),
            True,
        )
        return token if got else None

    def release(self, request: MetricsRequest, token: str) -> None:
        lock_key = self.key(request).lock
        self._call(lambda: self._release_lock(keys=[lock_key], args=[token]), None)

    def wait_for(self, request: MetricsRequest, poll_seconds: float = 0.005) -> Lookup:
        """Poll for the value another process is computing, up to the lock's lifetime."""
        deadline = self.clock() + self.lock_seconds
        lookup = Lookup(None, None)
        while self.clock() < deadline and self.available:
            lookup = self.lookup(request)
            if lookup.result is not None:
                return lookup
            time.sleep(poll_seconds)
        return lookup

    # -- invalidation ----------------------------------------------------------------

    def invalidate_org(self, organization_id: uuid.UUID) -> None:
        key = org_generation_key(organization_id)
        if self._call(lambda: self.redis.incr(key), None) is None:
            self._remember_invalidation(key)

    def invalidate_all(self) -> None:
        if self._call(lambda: self.redis.incr(GEN_ALL_KEY), None) is None:
            self._remember_invalidation(GEN_ALL_KEY)

    def close(self) -> None:
        self.redis.close()
