"""The Redis under the cache: a circuit breaker, a memory-policy check, and invalidations that
failed replayed by a background thread.

The cache is only as correct as its generation counters: a counter evicted, or an INCR
refused with OOM, lets other processes serve values an invalidation dropped. So the cache
is used only while Redis cannot do either to us: ``maxmemory`` 0, or a ``volatile-*``
policy (every value of ours carries a TTL and is evicted before a write of ours is refused;
the counters carry none and are never evicted). Invalidations are sent whatever the policy:
they are harmless, and processes that still trust the server need them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashquery.observability import REDIS_CIRCUIT_OPEN, REDIS_UNSAFE

log = logging.getLogger(__name__)
T = TypeVar("T")
Scope = uuid.UUID | None  # one organization's generation, or None: every organization's


def memory_problem(info: Mapping[str, Any]) -> str | None:
    """Why a server with this ``INFO memory`` could lose an invalidation, or None if it can't."""
    maxmemory = int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if maxmemory == 0 or policy.startswith("volatile-"):
        return None
    return (
        f"Redis has maxmemory {maxmemory} with maxmemory-policy {policy!r}: it may evict a"
        " generation counter or refuse its INCR, so an invalidation could be lost; the cache is"
        " off and results are computed. Fix: set maxmemory-policy to a volatile-* policy"
        " (e.g. volatile-lru) or maxmemory to 0"
    )


class RedisGuard:
    """A Redis client whose failures cost one short timeout per ``breaker_seconds``.

    ``replay`` INCRs the generation counters of the given scopes; invalidations that could not
    be sent are kept here and replayed before any other command, and by a daemon thread while
    this process is idle, so they never wait for its next read.
    """

    def __init__(
        self,
        url: str,
        *,
        replay: Callable[[Sequence[Scope]], None],
        socket_timeout: float,
        breaker_seconds: float,
        clock: Callable[[], float],
        check_seconds: float = 60.0,
        replay_seconds: float = 0.2,
    ) -> None:
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.breaker_seconds = breaker_seconds
        self.check_seconds = check_seconds
        self.replay_seconds = replay_seconds
        self.clock = clock
        self._replay = replay
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._next_check = float("-inf")  # first contact checks the server
        self.problem: str | None = None
        # Scopes whose INCR failed -> the sequence number of the latest failure.
        self._pending: dict[Scope, int] = {}
        self._seq = 0
        self._closed = threading.Event()
        self._replayer: threading.Thread | None = None

    # -- breaker ------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.clock() >= self._open_until

    def _claim(self) -> bool:
        """Closed: go. Open: no. Period over: this caller alone probes (half-open), so a dead
        Redis costs one attempt per period even with the replay thread also trying."""
        if self._open_until == 0.0:  # closed, the common case: no lock (one float read)
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            now = self.clock()
            if now < self._open_until:
                return False
            self._open_until = now + self.breaker_seconds
            return True

    def call(self, operation: Callable[[], T], default: T, *, always: bool = False) -> T:
        """``operation()``, or ``default`` when Redis is down or (unless ``always``) unsafe."""
        if not self._claim():
            return default
        try:
            if self.clock() >= self._next_check:
                self._check()
            if self._pending:
                # Missed invalidations go first: the call that finds Redis back must never
                # serve a value they cover.
                self._replay_pending()
            value = operation() if always or self.problem is None else default
        except redis.RedisError as exc:
            self._trip(exc)
            return default
        self._recovered()
        return value

    def _trip(self, exc: Exception) -> None:
        with self._lock:
            was_closed = self._open_until == 0.0
            self._open_until = self.clock() + self.breaker_seconds
        REDIS_CIRCUIT_OPEN.set(1)
        if was_closed:
            log.warning(
                "Redis unavailable (%s); serving computed results for %.0f s before retrying",
                exc,
                self.breaker_seconds,
            )

    def _recovered(self) -> None:
        if not self._open_until:  # closed already: nothing to do, no lock taken
            return
        with self._lock:
            if not self._open_until:
                return
            self._open_until = 0.0
        REDIS_CIRCUIT_OPEN.set(0)
        log.warning("Redis is back; using the cache again")

    # -- server check ---------------------------------------------------------------------

    def _check(self) -> None:
        """INFO memory (readable where CONFIG is disabled); raises RedisError if unreachable."""
        try:
            info = self.redis.info("memory")
            problem = memory_problem(info)
        except redis.ResponseError as exc:  # e.g. INFO denied by an ACL: we can't know
            problem = f"cannot read Redis's memory policy ({exc}); the cache is off"
        self._next_check = self.clock() + self.check_seconds
        if problem != self.problem:
            self.problem = problem
            REDIS_UNSAFE.set(0 if problem is None else 1)
            if problem is None:
                log.warning("Redis's memory policy is safe now; using the cache again")
            else:
                log.warning("%s", problem)

    def check_server(self) -> str | None:
        """Check the server now: None if the cache can use it, else the problem (for status)."""
        try:
            self._check()
        except redis.RedisError as exc:
            return f"Redis did not answer: {exc}"
        return self.problem

    # -- invalidations missed -------------------------------------------------------------

    def remember(self, scope: Scope) -> None:
        with self._lock:
            self._seq += 1
            self._pending[scope] = self._seq
            if self._replayer is None and not self._closed.is_set():
                self._replayer = threading.Thread(
                    target=self._replay_loop, name="dashquery-cache-replay", daemon=True
                )
                self._replayer.start()

    def _replay_pending(self) -> None:
        """INCR every pending scope; raises if it can't. An entry is forgotten only once its
        INCR succeeded and no newer failure of it came in meanwhile; replaying one twice
        merely invalidates twice."""
        with self._lock:
            pending = dict(self._pending)
        self._replay(list(pending))
        with self._lock:
            for scope, seq in pending.items():
                if self._pending.get(scope) == seq:
                    del self._pending[scope]
        log.warning("replayed %d invalidation(s) missed while Redis was unavailable", len(pending))

    def _replay_loop(self) -> None:
        while not self._closed.wait(self.replay_seconds):
            with self._lock:
                if not self._pending:
                    self._replayer = None
                    return
            if self.available:
                try:
                    self.call(lambda: None, None, always=True)
                except Exception as exc:  # e.g. PostgreSQL down, so no namespace yet: later
                    log.debug("replaying invalidations failed, will retry: %s", exc)

    def close(self) -> None:
        self._closed.set()
        replayer = self._replayer
        if replayer is not None:
            replayer.join(timeout=2.0)
        self.redis.close()
