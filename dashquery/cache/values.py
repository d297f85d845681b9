"""The Redis cache of ``DashboardMetrics``: generation-scoped keys, validated values, a
circuit breaker, and single-flight on misses.

Keys: ``{namespace}:m:{org}:{from}:{to}``. The namespace (``cache_namespace``) is the
contract version and a hash of the database's identity (cluster system identifier,
database, deployment id, fingerprint of the view definitions), both schemas and the time
zone: a result is only ever served to the database, deployment and configuration that
computed it, even when two databases with the same schema names share one Redis.

Invalidation never touches value keys: ``invalidate_org`` and ``invalidate_all`` INCR a
generation counter under the namespace (O(1), never KEYS or SCAN), and a value is only
served when the generations stored in it equal the current ones, read in the same MGET.
Superseded values simply expire with their TTL.

A value is ``dq3|gen_all|gen_org|crc32|payload``, the payload the compact JSON array of
``DashboardMetrics.to_document``. A hit costs little more than the MGET: the keys of a
request are memoised, and bytes identical to ones decoded and accepted before are not parsed
again (``Decoded``): only their generations are checked against the ones just read.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dashquery.cache.guard import RedisGuard, Scope
from dashquery.cache.keys import CacheKey, Decoded, Slot, cache_namespace
from dashquery.errors import DashqueryError
from dashquery.observability import CACHE_LOOKUP_COUNTS
from dashquery.read.request import MetricsRequest
from dashquery.result import DashboardMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["CacheKey", "Lock", "Lookup", "MetricsCache", "cache_namespace"]

# dq3: the compact array of ``DashboardMetrics.to_document`` (dq2 was a dict with key names;
# dq1 held JSON floats).
_FORMAT = b"dq3"
# Request -> its keys, per namespace: bounded by the distinct requests, emptied when full.
_SLOTS_MAX = 4096
Generations = tuple[bytes, bytes]
# Deleting the lock only if we still own it: KEYS[1] - lock key, ARGV[1] - our token.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache read: the result if valid, and the generations to store a new one under."""

    result: DashboardMetrics | None
    generations: Generations | None


@dataclass(frozen=True, slots=True)
class Lock:
    key: str
    token: str


class MetricsCache:
    """Redis behind a circuit breaker (``RedisGuard``): a dead or slow Redis costs one short
    timeout, then nothing until ``breaker_seconds`` have passed; the read path just computes.

    ``namespace`` is a string or a function returning it (``Client`` passes one reading
    ``Computer.identity()``, which changes when the views' definitions do). Invalidations
    that fail while Redis is down are replayed as soon as it answers again, by a background
    thread if this process makes no other call; those lost with the process are bounded by
    the TTL.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str | Callable[[], str],
        timezone: str,
        ttl_seconds: float = 300.0,
        ttl_jitter: float = 0.1,
        socket_timeout: float = 0.05,
        breaker_seconds: float = 5.0,
        lock_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        server_check_seconds: float = 60.0,
    ) -> None:
        self.guard = RedisGuard(
            url,
            replay=self._incr_generations,
            socket_timeout=socket_timeout,
            breaker_seconds=breaker_seconds,
            clock=clock,
            check_seconds=server_check_seconds,
        )
        self.redis = self.guard.redis
        self._namespace = namespace
        self.timezone = timezone
        self.ttl_seconds = ttl_seconds
        self.ttl_jitter = ttl_jitter
        self.lock_seconds = lock_seconds
        self.clock = clock
        self._release_lock = self.redis.register_script(_RELEASE_LOCK)
        self._slots: dict[tuple[str, MetricsRequest], Slot] = {}
        self._decoded: Decoded[DashboardMetrics] = Decoded(DashboardMetrics.copy)

    @property
    def namespace(self) -> str:
        return self._namespace if isinstance(self._namespace, str) else self._namespace()

    def generation_key(self, scope: Scope) -> str:
        if scope is None:
            return f"{self.namespace}:gen:all"
        return f"{self.namespace}:gen:org:{scope}"

    def key(self, request: MetricsRequest) -> CacheKey:
        return self._slot(request).key

    def _slot(self, request: MetricsRequest) -> Slot:
        namespace = self.namespace
        slot = self._slots.get((namespace, request))
        if slot is None:
            org, start, end = request.organization_id, request.date_from, request.date_to
            value = f"{namespace}:m:{org}:{start}:{end}"
            slot = Slot(
                CacheKey(value=value, lock=value + ":lock"),
                (value, f"{namespace}:gen:all", f"{namespace}:gen:org:{org}"),
                [str(org), start.isoformat(), end.isoformat(), self.timezone],
            )
            if len(self._slots) >= _SLOTS_MAX:
                self._slots.clear()
            self._slots[(namespace, request)] = slot
        return slot

    @property
    def available(self) -> bool:
        return self.guard.available

    def check_server(self) -> str | None:
        """None when the cache can use this Redis, else the problem (``dashquery status``)."""
        return self.guard.check_server()

    # -- values ----------------------------------------------------------------------

    def lookup(self, request: MetricsRequest) -> Lookup:
        slot = self._slot(request)

        def decode(document: Any) -> DashboardMetrics:
            # The organization, range and time zone as strings against the ones this
            # request's value must carry, so the request need not be parsed back.
            if type(document) is not list or document[:4] != slot.header:
                raise ValueError("value belongs to another request")
            return DashboardMetrics.from_parts(
                document, request.organization_id, request.date_from, request.date_to,
                self.timezone, "cache",
            )  # fmt: skip

        result, generations, outcome = self.read(
            slot.key.value, request.organization_id, _FORMAT, decode, slot.mget, self._decoded
        )
        CACHE_LOOKUP_COUNTS[outcome].inc()
        return Lookup(result, generations)

    def store(
        self, request: MetricsRequest, result: DashboardMetrics, generations: Generations
    ) -> None:
        self.write(
            self.key(request).value, _FORMAT, result.to_document(), generations, self.ttl_seconds
        )

    def read(
        self,
        key: str,
        organization_id: uuid.UUID,
        fmt: bytes,
        decode: Callable[[Any], T],
        keys: Sequence[str] | None = None,
        decoded: Decoded[T] | None = None,
    ) -> tuple[T | None, Generations | None, str]:
        """One MGET of a value and the generations guarding it, the envelope checked.

        Returns the decoded value (None unless it is intact, of format ``fmt``, stored under
        the current generations, and accepted by ``decode``, which raises ``ValueError``,
        ``KeyError`` or ``TypeError`` for anything else), the generations to store a new
        value under (None while Redis is unavailable or unsafe) and the outcome: hit, miss,
        stale, corrupt, unavailable or disabled. ``keys``: the MGET's three keys (the value
        and the generations), when the caller has them at hand. ``decoded``: the values
        decoded before, reused while the key holds the same bytes (see ``Decoded``).
        """
        if keys is None:
            keys = (key, self.generation_key(None), self.generation_key(organization_id))
        raw = self.guard.call(lambda: self.redis.mget(keys), None)
        if raw is None:
            return None, None, "unavailable" if self.guard.problem is None else "disabled"
        value, gen_all, gen_org = raw
        generations = (gen_all or b"0", gen_org or b"0")
        if value is None:
            return None, generations, "miss"
        try:
            stored_fmt, stored_all, stored_org, checksum, payload = value.split(b"|", 4)
            known = decoded.get(key, value) if decoded is not None else None
            if known is None and (stored_fmt != fmt or int(checksum, 16) != zlib.crc32(payload)):
                raise ValueError("bad header or checksum")
            if (stored_all, stored_org) != generations:
                return None, generations, "stale"
            if known is not None:  # these very bytes passed every check below before
                return decoded.copy(known), generations, "hit"  # type: ignore[union-attr]
            result = decode(json.loads(payload))
            if decoded is not None:
                decoded.put(key, value, result)
                result = decoded.copy(result)
            return result, generations, "hit"
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            log.warning("discarding a corrupt cache value at %s: %s", key, exc)
            return None, generations, "corrupt"

    def write(
        self,
        key: str,
        fmt: bytes,
        document: Any,
        generations: Generations,
        ttl_seconds: float,
    ) -> None:
        """Store ``document`` as JSON in a checksummed envelope tagged with the generations
        it was computed under, expiring after ``ttl_seconds`` ± the jitter (every value has
        a TTL: that is what makes a ``volatile-*`` policy evict values, never counters)."""
        payload = json.dumps(document, separators=(",", ":")).encode()
        value = b"|".join([fmt, *generations, b"%08x" % zlib.crc32(payload), payload])
        ttl = ttl_seconds * (1 + random.uniform(-self.ttl_jitter, self.ttl_jitter))
        self.guard.call(lambda: self.redis.set(key, value, px=max(1, int(ttl * 1000))), None)

    # -- single flight ---------------------------------------------------------------

    def try_lock(self, request: MetricsRequest, generations: Generations) -> Lock | None:
        """A short Redis lock so one process computes a missing key; None if another has it.

        The lock belongs to the generations the caller read: a computation that started
        before an invalidation holds the old generations' lock, so a call after it computes
        at once instead of waiting for a value it could not use. When Redis is unavailable
        everyone "gets" the lock: computing is always safe.
        """
        lock = Lock(f"{self.key(request).lock}:{generations[0].decode()}:{generations[1].decode()}",
                    uuid.uuid4().hex)  # fmt: skip
        got = self.guard.call(
            lambda: self.redis.set(lock.key, lock.token, nx=True, px=int(self.lock_seconds * 1000)),
            True,
        )
        return lock if got else None

    def release(self, lock: Lock) -> None:
        self.guard.call(lambda: self._release_lock(keys=[lock.key], args=[lock.token]), None)

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

    def _incr_generations(self, scopes: Sequence[Scope]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for scope in scopes:
            pipe.incr(self.generation_key(scope))
        pipe.execute()

    def _invalidate(self, scope: Scope) -> None:
        try:
            done = self.guard.call(lambda: self._incr_generations([scope]) or True, False,
                                   always=True)  # fmt: skip
        except DashqueryError as exc:  # no namespace yet (PostgreSQL unreachable): later
            log.warning("invalidation deferred until the database answers: %s", exc)
            done = False
        if not done:
            self.guard.remember(scope)

    def invalidate_org(self, organization_id: uuid.UUID) -> None:
        self._invalidate(organization_id)

    def invalidate_all(self) -> None:
        self._invalidate(None)

    def close(self) -> None:
        self.guard.close()
