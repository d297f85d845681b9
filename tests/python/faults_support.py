"""Fault injection for the failure tests: a network link we can slow down or cut, a clock.

Nothing here stops or pauses a shared server: the proxy sits between one test's client and
a real server on loopback, so "Redis is unreachable" can be simulated while the server keeps
its data (a stopped Redis would lose it, which would hide stale-entry bugs), and PostgreSQL
can be cut off without moving its port.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

from dashquery.cache.values import MetricsCache
from dashquery.catalog import METRIC_KEYS
from dashquery.client import Client
from dashquery.dev.stack import LocalStack
from dashquery.result import DashboardMetrics
from tests.python.fault_stack import FaultStack
from tests.python.helpers import Dashboard, business_today


@contextmanager
def private_stack(prefix: str) -> Iterator[LocalStack]:
    """A PostgreSQL + Redis of one test module's own, for faults that stop or freeze a server
    (the session's stack is shared by every other test)."""
    local = FaultStack(root=Path(tempfile.mkdtemp(prefix=prefix)))
    try:
        local.start()
        yield local
    finally:
        local.destroy()


def last_quarter(dashboard: Dashboard) -> tuple[uuid.UUID, dt.date, dt.date]:
    """The first organization's last 90 days: materialized days and today's live one."""
    today = business_today(dashboard.settings)
    return dashboard.organization_ids[0], today - dt.timedelta(days=89), today


def numbers(result: DashboardMetrics) -> dict[str, Any]:
    """The §3 values as JSON: how a cached result (floats) and a computed one (Decimals)
    compare. Computed results are compared exactly, through ``metrics``, where possible."""
    data = result.to_dict()
    return {key: data[key] for key in METRIC_KEYS}


def recent_ranges(dashboard: Dashboard) -> list[tuple[dt.date, dt.date]]:
    """Two ranges ending today: both halves of the hybrid read (materialized and live)."""
    today = business_today(dashboard.settings)
    return [(today - dt.timedelta(days=400), today), (today - dt.timedelta(days=30), today)]


def relation(dashboard: Dashboard, name: str) -> sql.Composed:
    """A relation of the dashboard schema (views and bookkeeping tables)."""
    return sql.SQL("{}.{}").format(sql.Identifier(dashboard.settings.schema), sql.Identifier(name))


def poll(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    """The first truthy ``check()``, asked every 50 ms for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return found


class FakeClock:
    """A monotonic clock the test moves by hand (``MetricsCache(clock=...)``)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def patient_cache(client: Client, **options: Any) -> MetricsCache:
    """Give ``client`` a cache like its own but with a 0.5 s socket timeout (and ``options``).

    With the default 50 ms, a loaded 2-core test machine now and then misses a reply from a
    healthy Redis, which rightly opens the breaker but makes a test about something else
    flaky. The faults injected (a stop, SIGSTOP, a 2 s delay) are far beyond 0.5 s.
    """
    assert client.cache is not None
    old = client.cache
    client.cache = MetricsCache(
        client.settings.redis_url,
        namespace=old.namespace,
        timezone=old.timezone,
        ttl_seconds=old.ttl_seconds,
        **{"socket_timeout": 0.5, **options},
    )
    old.close()
    return client.cache


def count_redis_round_trips(cache: MetricsCache) -> list[float]:
    """Record every connection the cache takes from its pool: one per command or pipeline,
    attempted whether or not Redis answers."""
    taken: list[float] = []
    pool = cache.redis.connection_pool
    original: Callable[..., Any] = pool.get_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        taken.append(time.monotonic())
        return original(*args, **kwargs)

    pool.get_connection = counting  # type: ignore[method-assign]
    return taken


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """A loopback TCP proxy in front of a real server (Redis or PostgreSQL).

    ``delay`` holds every chunk that many seconds before forwarding it (a slow network or
    server); ``cut()`` resets every open connection and closes new ones at once, without
    forwarding anything (a partition: the server keeps its data); ``heal()`` undoes both.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = 0.0
        self.is_cut = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self) -> None:
        self.is_cut = True
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def heal(self) -> None:
        self.delay = 0.0
        self.is_cut = False

    def close(self) -> None:
        _close(self._listener)
        self.cut()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if self.is_cut:
                _close(downstream)
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [downstream, upstream]
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                if self.is_cut:
                    break  # a partition loses what was in flight
                target.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on the socket; close() alone may not.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def relation_kind(conn: psycopg.Connection[Any], dashboard: Dashboard, name: str) -> sql.SQL:
    """The DDL keyword for a materialized block as it exists now: ``table`` (the incremental
    strategy) or ``materialized view`` (the concurrent one)."""
    row = conn.execute(
        "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s",
        (dashboard.settings.schema, name),
    ).fetchone()
    assert row is not None, f"{name} does not exist"
    return sql.SQL("materialized view" if row[0] == "m" else "table")
