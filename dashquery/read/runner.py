"""One read on a pooled connection: bounded retries, a client-side deadline per attempt, and
every psycopg error turned into ``Misconfigured`` or ``Unavailable`` naming the cause.

The documented bound (README): ``retries + 1`` attempts, each at most ``pool_timeout`` to
get a connection plus ``statement_timeout`` (+ the deadline's slack) to answer, plus the
backoff. Settings that cannot answer are not retried at all.
"""

from __future__ import annotations

import itertools
import logging
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from dashquery.catalog import MATERIALIZED_VIEWS
from dashquery.config import Settings
from dashquery.errors import Misconfigured, Unavailable
from dashquery.read.connection import CANCEL_SECONDS, CANCELLED_SECONDS, WATCHDOG, connect_failure

log = logging.getLogger(__name__)
T = TypeVar("T")

# A view's column was retyped under a connection's prepared statements (a rebuild).
_STALE_PLAN = "cached plan must not change result type"
# A lost connection, a timeout or a server shutting down is worth another attempt; a
# deterministic error (bad SQL, bad data) is not.
_RETRYABLE = (psycopg.OperationalError, psycopg.errors.TransactionRollback, PoolTimeout)
# How long past statement_timeout the client waits before cancelling: the server's own
# timeout gets the first chance (it leaves the connection usable).
DEADLINE_SLACK = 0.5


# Numbers each DEALLOCATE ALL's text (see _deallocate_all).
_REPAIRS = itertools.count(1)


class Rediscover(Exception):
    """The views changed under this attempt: look them up again, retry (one extra attempt)."""


class Runner:
    """The retry loop; ``forget_views`` is what a changed schema triggers (Computer)."""

    def __init__(self, settings: Settings, pool: ConnectionPool, *, retries: int) -> None:
        self.settings = settings
        self.pool = pool
        self.retries = retries
        self.statement_timeout = float(getattr(pool, "statement_timeout_seconds", 5.0))
        # Bumped by a stale-plan error: a connection that prepared its statements under an
        # older number drops them (DEALLOCATE ALL, which psycopg's own cache follows).
        self._plans = 0
        self._conn_plans: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._connected = False  # did the last attempt get a working connection

    def forget_views(self) -> None:
        raise NotImplementedError

    def run(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``read`` on a pooled connection, with the read path's bounded retries.

        A vanished view or a stale prepared plan makes the views be looked up again and
        costs one extra attempt; a lost connection or a timeout is retried after a short
        backoff; after ``retries`` more attempts the caller gets ``Unavailable``.
        """
        last: BaseException | None = None
        attempts, attempt, rediscovered = self.retries + 1, 0, False
        while attempt < attempts:
            attempt += 1
            try:
                return self._attempt(read)
            except Rediscover as exc:
                self.forget_views()
                last = exc.__cause__
                if not rediscovered:
                    rediscovered, attempts = True, attempts + 1
            except _RETRYABLE as exc:
                last = exc
                log.warning("PostgreSQL attempt %d failed: %s", attempt, _first_line(exc))
                if attempt < attempts:
                    time.sleep(min(0.05 * 2 ** (attempt - 1), 0.5))
        raise Unavailable(
            f"PostgreSQL did not answer after {attempts} attempts: {_first_line(last)}"
        ) from last

    def _attempt(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        if not self._connected and self.pool.get_stats().get("pool_available", 0) == 0:
            self._probe()  # no connection to wait for: ask libpq why right away
        try:
            conn = self.pool.getconn()
        except PoolTimeout:
            self._connected = False
            self._probe()  # names the cause when the server is unreachable
            raise
        try:
            result = self._read(conn, read)
        finally:
            self.pool.putconn(conn)  # a closed or broken connection is replaced
        self._connected = True
        return result

    def _read(
        self, conn: psycopg.Connection[Any], read: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        seconds = self.statement_timeout + DEADLINE_SLACK
        watch = WATCHDOG.arm(conn, seconds)
        try:
            if self._conn_plans.get(conn, self._plans) < self._plans:
                _deallocate_all(conn)
            self._conn_plans[conn] = self._plans
            return read(conn)
        except psycopg.Error as exc:
            watch.disarm()
            if watch.shut_down:
                conn.close()  # its socket is gone: the pool replaces it
            if watch.fired:
                self._connected = False
                raise psycopg.errors.QueryCanceled(
                    f"no answer within {seconds + CANCEL_SECONDS + CANCELLED_SECONDS:.1f} s"
                    f" (client-side deadline; {_first_line(exc)})"
                ) from exc
            self._classify(conn, exc)
            raise
        finally:
            watch.disarm()

    def _probe(self) -> None:
        """One direct connection (ReadPool.probe): a permanent cause raises at once."""
        probe = getattr(self.pool, "probe", None)
        if probe is None:
            return
        try:
            probe()
        except psycopg.Error as exc:
            cause, permanent = connect_failure(exc)
            if permanent:
                raise Unavailable(f"PostgreSQL cannot be used: {cause}") from None
            raise psycopg.OperationalError(cause) from None

    def _classify(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> None:
        """Raise what a psycopg error means; return for a retryable one."""
        stale_plan = isinstance(exc, psycopg.errors.FeatureNotSupported) and _STALE_PLAN in str(exc)
        # The server no longer has a statement psycopg believes prepared (its cache and the
        # session disagree): the same repair, for this connection.
        lost_plan = isinstance(exc, psycopg.errors.InvalidSqlStatementName)
        if stale_plan or lost_plan:
            if stale_plan:
                self._plans += 1  # every pooled connection drops its plans before its next read
            _deallocate_all(conn)
            self._conn_plans[conn] = self._plans
            log.warning("prepared statements dropped and views rediscovered (%s)", _first_line(exc))
            raise Rediscover() from exc
        if isinstance(exc, psycopg.errors.ObjectNotInPrerequisiteState) and (
            "has not been populated" in str(exc)
        ):
            raise Rediscover() from exc  # WITH NO DATA under a running client: read it live
        if isinstance(exc, psycopg.errors.UndefinedTable):
            if any(name in str(exc) for name in MATERIALIZED_VIEWS):
                log.warning("a materialized view disappeared; reading its block live: %s", exc)
            raise Rediscover() from exc  # discovery raises Misconfigured if views are gone
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            user = conn.info.user
            schema = sql.Identifier(self.settings.schema).as_string(conn)
            role = sql.Identifier(user).as_string(conn)
            raise Misconfigured(
                f"PostgreSQL role {user!r} may not read the dashquery views"
                f" ({_first_line(exc)}): grant usage on schema {schema} to {role};"
                f" grant select on all tables in schema {schema} to {role}"
            ) from None
        if isinstance(exc, psycopg.OperationalError):
            self._connected = False
            if not isinstance(exc, psycopg.errors.QueryCanceled):
                # A lost connection (restart, terminated backends) usually means its idle
                # siblings are dead too: test them all now, or each retry would draw one.
                self.pool.check()
            return
        if not isinstance(exc, _RETRYABLE):
            raise Unavailable(f"PostgreSQL could not answer: {_first_line(exc)}") from exc


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def _deallocate_all(conn: psycopg.Connection[Any]) -> None:
    """Drop the session's prepared statements and psycopg's record of them together.

    psycopg forgets its prepared names when it sees the DEALLOCATE ALL command tag, but only
    for a query text it has not seen on that connection before (psycopg 3.3 checks the
    result of a query's first execution only), so every repair sends a text of its own. Never
    prepared itself: DEALLOCATE ALL would drop its own statement and leave psycopg holding a
    name the server does not have.
    """
    with suppress(psycopg.Error):
        conn.execute(f"deallocate all /* dashquery repair {next(_REPAIRS)} */", prepare=False)
