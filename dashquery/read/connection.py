"""The read path's PostgreSQL connections: the pool, what a failed connection means, and a
client-side deadline per attempt.

``statement_timeout`` is enforced by the server, so a server that stops answering (frozen,
network gone) would block a read forever. Here every attempt also has a deadline: past it
the statement is cancelled, and when the server cannot even take the cancel its socket is
shut down, so the blocked call returns and the pool discards that connection. TCP
keepalives and ``tcp_user_timeout`` catch a silent peer on a real network as well.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# After the deadline: how long the cancel may take, then how long the statement has to end.
CANCEL_SECONDS = 0.5
CANCELLED_SECONDS = 0.5


class ReadPool(ConnectionPool):
    """A ``ConnectionPool`` that also knows its timeouts and how to ask libpq directly."""

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int,
        statement_timeout_ms: int,
        pool_timeout_seconds: float,
    ) -> None:
        self.statement_timeout_seconds = statement_timeout_ms / 1000
        self.connect_kwargs = session_kwargs(statement_timeout_ms, pool_timeout_seconds)
        super().__init__(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout_seconds,
            kwargs=self.connect_kwargs,
            name="dashquery",
            open=True,
        )

    def probe(self) -> None:
        """One direct connection, closed again: raises libpq's own error (refused, unknown
        host, authentication, missing database) where the pool would only time out."""
        psycopg.connect(self.conninfo, **self.connect_kwargs).close()


def session_kwargs(statement_timeout_ms: int, pool_timeout_seconds: float) -> dict[str, Any]:
    bound_ms = int(statement_timeout_ms + pool_timeout_seconds * 1000)
    return {
        "autocommit": True,
        # JIT costs more than these queries save. random_page_cost=1.1: the working set is
        # in memory, and at the default 4.0 the planner hashes every job to join today's
        # few time entries instead of probing jobs_pkey (6 ms vs 0.5 ms). No parallel
        # workers: each read is a few index probes, and the generic plan cannot know how
        # many days a changed-days array holds, so on ten years of history it chose a
        # parallel scan of a whole jobs index (Gather, 2 workers) over the expression
        # index's probes: 85 ms instead of 2.7 ms for a 1-day read. Generic plans only: the
        # statements are written for their generic plan (zone and schemas literal), and under
        # the default plan_cache_mode=auto PostgreSQL plans the first five executions of a
        # prepared statement with their values anyway, on every new pool connection: ~13 ms
        # of planning each at 10x, a 25-30 ms cache miss instead of ~3 ms (and later, by
        # estimate, it may keep choosing custom plans).
        "options": (
            "-c jit=off -c random_page_cost=1.1 -c max_parallel_workers_per_gather=0"
            " -c plan_cache_mode=force_generic_plan"
            f" -c statement_timeout={int(statement_timeout_ms)}"
        ),
        # libpq counts connect_timeout in whole seconds, at least 2.
        "connect_timeout": max(2, int(pool_timeout_seconds)),
        # A peer that vanished without a FIN (partition, powered-off host): keepalives find
        # out in ~11 s when idle, tcp_user_timeout when sent data stays unacknowledged.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": bound_ms,
    }


def connect_failure(exc: BaseException) -> tuple[str, bool]:
    """libpq's connection error as a cause a person acts on, and whether it is permanent
    (retrying cannot help: a wrong host name, password or database)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    lower = text.lower()
    if "could not translate host name" in lower or "name or service not known" in lower:
        return f"unknown host ({first})", True
    if (
        "authentication failed" in lower
        or "no pg_hba.conf entry" in lower
        or ("no password supplied" in lower)
    ):
        return f"authentication failed ({first})", True
    if "database" in lower and "does not exist" in lower:
        return f"database missing ({first})", True
    if "role" in lower and "does not exist" in lower:
        return f"authentication failed: no such role ({first})", True
    if "connection refused" in lower:
        return f"connection refused ({first})", False
    if "timeout expired" in lower or "timed out" in lower:
        return f"connection timed out ({first})", False
    return first, False


@dataclass(order=True)
class Watch:
    """One armed deadline; ``fired`` once the watchdog acted on it."""

    deadline: float
    seq: int
    conn: psycopg.Connection[Any] = field(compare=False)
    done: bool = field(default=False, compare=False)
    fired: bool = field(default=False, compare=False)
    shut_down: bool = field(default=False, compare=False)
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def disarm(self) -> None:
        with self.lock:  # an interruption in progress finishes first
            self.done = True


class Watchdog:
    """One thread for every deadline of the process (a timer thread per read would cost
    more than the read); an expired one is interrupted on a thread of its own."""

    def __init__(self) -> None:
        self._heap: list[Watch] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> Watch:
        watch = Watch(time.monotonic() + seconds, next(self._seq), conn)
        with self._cond:
            heapq.heappush(self._heap, watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="dq-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0] is watch:
                self._cond.notify()
        return watch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(timeout=60)
                    continue
                wait = self._heap[0].deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                watch = heapq.heappop(self._heap)
            threading.Thread(target=_interrupt, args=(watch,), daemon=True).start()


def _interrupt(watch: Watch) -> None:
    if watch.done:
        return
    watch.fired = True
    log.warning("PostgreSQL did not answer before the deadline: cancelling the statement")
    try:
        watch.conn.cancel_safe(timeout=CANCEL_SECONDS)
    except Exception as exc:  # a frozen postmaster cannot take the cancel
        log.warning("cancelling failed (%s)", exc)
    end = time.monotonic() + CANCELLED_SECONDS
    while not watch.done and time.monotonic() < end:
        time.sleep(0.01)
    with watch.lock:
        if watch.done:
            return
        # The server took no cancel: end the blocked call by shutting the socket down (a
        # dup of its descriptor; shutdown acts on the socket itself), libpq then reports
        # the connection lost and the connection is discarded.
        with suppress(OSError, psycopg.Error):
            fd = watch.conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            watch.shut_down = True


WATCHDOG = Watchdog()
