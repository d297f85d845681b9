"""In-process single flight: threads asking for the same value share one computation, but
never one that an invalidation has overtaken.

A call joins a computation only if it would have run the same one: the same request, the
same cache generations seen at lookup, and the same local invalidation epochs. The epochs are
bumped by this process's ``invalidate_org``/``invalidate_all`` before they return, so a call
that starts after one of them returned never joins a computation that started before it
(which may have read the database before the write that prompted it), even when Redis is
down and the generations can't show it. Invalidations from other processes change the
generations a later lookup sees.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class Flights(Generic[V]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, Future[V]] = {}
        self._epoch_all = 0
        # One counter per organization ever invalidated here: bounded by the tenants.
        self._epochs: dict[uuid.UUID, int] = {}

    def epoch(self, organization_id: uuid.UUID) -> tuple[int, int]:
        """Read before the cache lookup: the invalidations this call must not predate."""
        with self._lock:
            return self._epoch_all, self._epochs.get(organization_id, 0)

    def invalidated(self, organization_id: uuid.UUID | None) -> None:
        with self._lock:
            if organization_id is None:
                self._epoch_all += 1
            else:
                self._epochs[organization_id] = self._epochs.get(organization_id, 0) + 1

    def run(self, key: Hashable, compute: Callable[[], V]) -> V:
        """``compute()``, shared with every concurrent call of the same ``key``."""
        with self._lock:
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = self._inflight[key] = Future()
        if not leader:
            return future.result()
        try:
            result = compute()
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._inflight[key]
