"""``dashquery listen``: drop an organization's cached results within about a second of a
committed change to its data (issue 13 item 4).

The capture triggers record every changed group in ``catalog.CHANGES_TABLE`` and, once per
statement, ``pg_notify(catalog.CHANGES_CHANNEL, '<org>,<org>...')``. ``Listener.run`` keeps one
autocommit connection (``application_name`` = ``catalog.LISTENER_APPLICATION_NAME``, which
``dashquery status`` looks for) that LISTENs on the channel and, for every notification, bumps
those organizations' cache generations (``Client.invalidate_org``).

The notification is an accelerator, never what correctness rests on (Citus drops
``pg_notify`` on the shards; a listener away loses what was sent meanwhile):

- at every (re)connect, after LISTEN, it invalidates everything (``Client.invalidate_all``);
- every ``poll_seconds`` it reads the change rows committed since its previous poll, and
  those that refreshes committed since consumed (``dashquery_refresh_runs``
  ``consumed_organizations`` / ``consumed_xact``: a refresh may delete a row no poll has
  seen yet), and invalidates their organizations. "Since" is by transaction, not by
  ``changed_at``: a row's ``changed_at`` is the clock inside its transaction, which may commit
  long after rows with a later ``changed_at`` were seen, so a ``changed_at > last seen`` poll
  would skip it. Each poll keeps its statement's ``pg_current_snapshot()``; the next one
  takes the rows whose ``xact_id`` that snapshot did not see. Every committed row is taken
  by exactly one poll.

A change of the cache identity (a deploy changes the views' fingerprint) is noticed by the
poll: the listener rediscovers it and, for one metrics TTL, also invalidates the previous
namespace, which processes that have not noticed the deploy yet still serve from.

It writes a heartbeat (``heartbeat_key``: a Redis hash under the cache namespace with a TTL)
read by ``dashquery status`` (``status_checks.check_listener``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from psycopg import sql

from dashquery.cache.values import MetricsCache
from dashquery.catalog import (
    CHANGES_CHANNEL,
    CHANGES_TABLE,
    LISTENER_APPLICATION_NAME,
)
from dashquery.client import Client
from dashquery.errors import DashqueryError
from dashquery.ops.listen_poll import SNAPSHOT_ONLY, poll_statement
from dashquery.ops.pg_errors import one_line
from dashquery.read.bookkeeping_sql import Bookkeeping

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TTL_SECONDS = 3 * HEARTBEAT_SECONDS
# How long one notifies() wait lasts: the most a stop request waits.
WAIT_SECONDS = 0.5
BACKOFF_SECONDS = (0.5, 30.0)  # first retry, longest wait between retries


def heartbeat_key(namespace: str) -> str:
    return f"{namespace}:listener"


def parse_payload(payload: str) -> list[uuid.UUID]:
    """The organizations of one notification ('<uuid>,<uuid>...'); malformed parts skipped."""
    found = []
    for part in payload.split(","):
        try:
            found.append(uuid.UUID(part.strip()))
        except ValueError:
            if part.strip():
                log.warning("ignoring a malformed organization id in a notification: %r", part)
    return found


@dataclass
class ListenerState:
    """What the loop has done, for its heartbeat and for tests."""

    connects: int = 0
    connected_at: float | None = None
    last_notification_at: float | None = None
    last_poll_at: float | None = None
    notifications: int = 0
    invalidated: int = 0
    polled_organizations: int = 0
    connected: threading.Event = field(default_factory=threading.Event)


class Listener:
    """The loop of ``dashquery listen`` (``run`` until ``stop`` is set)."""

    def __init__(
        self,
        client: Client,
        *,
        stop: threading.Event | None = None,
        poll_seconds: float = POLL_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        backoff_seconds: tuple[float, float] = BACKOFF_SECONDS,
    ) -> None:
        self.client = client
        self.settings = client.settings
        self.stop = stop or threading.Event()
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.backoff_seconds = backoff_seconds
        self.state = ListenerState()
        bookkeeping = Bookkeeping(self.settings)
        self._poll_sql = poll_statement(bookkeeping)
        self._changes_name = bookkeeping.relation(CHANGES_TABLE).as_string(None)
        self._capture = False
        self._identity: tuple[str, str] | None = None
        self._previous: list[tuple[MetricsCache, float]] = []  # (cache, until monotonic)

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Listen, poll and invalidate until ``stop``; reconnect with backoff when the
        connection fails. One log line per (re)connect and per lost connection."""
        delay, down_since = self.backoff_seconds[0], None
        while not self.stop.is_set():
            try:
                with self._connect() as conn:
                    down_for = None if down_since is None else time.monotonic() - down_since
                    down_since, delay = None, self.backoff_seconds[0]
                    self._serve(conn, down_for)
            except (psycopg.Error, OSError) as exc:
                self.state.connected.clear()
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning(
                        "PostgreSQL connection lost or refused (%s); reconnecting with"
                        " backoff up to %.0f s",
                        one_line(exc),
                        self.backoff_seconds[1],
                    )
                self.stop.wait(delay)
                delay = min(delay * 2, self.backoff_seconds[1])
        self.state.connected.clear()
        for cache, _until in self._previous:
            cache.close()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.settings.conninfo,
            autocommit=True,
            application_name=LISTENER_APPLICATION_NAME,
            connect_timeout=5,
            # A silent peer (partition, powered-off host) is found out in ~11 s.
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            options="-c statement_timeout=5000",
        )  # fmt: skip

    def _serve(self, conn: psycopg.Connection[Any], down_for: float | None) -> None:
        conn.execute(sql.SQL("listen {}").format(sql.Identifier(CHANGES_CHANNEL)))
        # The first poll takes the snapshot the next one starts from: a change committed
        # after it is polled later, one committed before it is covered by this invalidation.
        seen = self._poll(conn, None)
        self.client.invalidate_all()
        for cache, _until in self._previous:
            cache.invalidate_all()
        self.state.connects += 1
        self.state.connected_at = time.time()
        self.state.connected.set()
        log.warning(
            "listening on %s for schema %s (connection %d%s); invalidated every cached result,"
            " since notifications sent while not listening are lost",
            CHANGES_CHANNEL, self.settings.schema, self.state.connects,
            "" if down_for is None else f", after {down_for:.0f} s without PostgreSQL",
        )  # fmt: skip
        next_poll = time.monotonic() + self.poll_seconds
        next_beat = 0.0
        while not self.stop.is_set():
            if time.monotonic() >= next_beat:
                self._heartbeat()
                next_beat = time.monotonic() + self.heartbeat_seconds
            wait = max(0.0, min(WAIT_SECONDS, next_poll - time.monotonic()))
            for notify in conn.notifies(timeout=wait):
                self.state.notifications += 1
                self.state.last_notification_at = time.time()
                self._invalidate(parse_payload(notify.payload))
                if self.stop.is_set():
                    break
            if time.monotonic() >= next_poll:
                seen = self._poll(conn, seen)
                next_poll = time.monotonic() + self.poll_seconds

    # -- the fallback poll ----------------------------------------------------------------

    def _poll(self, conn: psycopg.Connection[Any], seen: str | None) -> str:
        if not self._capture:
            # Capture not deployed (yet, or switched off): look again at every poll.
            found = conn.execute("select to_regclass(%s) is not null",
                                 (self._changes_name,)).fetchone()  # fmt: skip
            self._capture = bool(found and found[0])
        row = None
        if self._capture:
            try:
                row = conn.execute(self._poll_sql, {"seen": seen}).fetchone()
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                # bookkeeping older than this listener: snapshot-only until dbt runs
                self._capture = False
        if row is None:
            row = conn.execute(SNAPSHOT_ONLY).fetchone()
        assert row is not None
        snapshot, deployment_id, fingerprint, organizations = row
        self.state.last_poll_at = time.time()
        if deployment_id is not None:
            self._check_identity((str(deployment_id), str(fingerprint)))
        if organizations:
            self.state.polled_organizations += len(organizations)
            self._invalidate(organizations)
        return str(snapshot)

    def _check_identity(self, identity: tuple[str, str]) -> None:
        """A deploy changed the cache namespace: use the new one, and keep invalidating the
        old one for a TTL (processes that have not noticed the deploy serve from it)."""
        now = time.monotonic()
        for cache, until in [p for p in self._previous if p[1] <= now]:
            cache.close()
            self._previous.remove((cache, until))
        if self._identity is None or identity == self._identity:
            self._identity = identity
            return
        self._identity = identity
        cache = self.client.cache
        if cache is None:
            return
        try:
            old = self.client.cache_namespace()
            self.client.computer.forget_views()
            self.client.computer.run(self.client.computer.statements)  # rediscover identity
        except DashqueryError as exc:
            log.warning("cannot look the new deployment up yet: %s", exc)
            return
        if self.client.cache_namespace() != old:
            previous = MetricsCache(self.settings.redis_url, namespace=old,
                                    timezone=self.settings.timezone)  # fmt: skip
            self._previous.append((previous, time.monotonic() + cache.ttl_seconds * 1.2))
            log.warning("the views were redeployed: new cache namespace %s",
                        self.client.cache_namespace())  # fmt: skip
        self.client.invalidate_all()

    # -- invalidation and heartbeat -------------------------------------------------------

    def _invalidate(self, organizations: Iterable[uuid.UUID]) -> None:
        for org in dict.fromkeys(organizations):
            self.client.invalidate_org(org)
            for cache, _until in self._previous:
                cache.invalidate_org(org)
            self.state.invalidated += 1

    def _heartbeat(self) -> None:
        cache = self.client.cache
        if cache is None:
            return
        state = self.state
        fields = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "schema": self.settings.schema,
            "connected_at": state.connected_at or "",
            "last_notification_at": state.last_notification_at or "",
            "last_poll_at": state.last_poll_at or "",
            "notifications": state.notifications,
        }
        try:
            key = heartbeat_key(self.client.cache_namespace())
            pipe = cache.redis.pipeline(transaction=True)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, int(HEARTBEAT_TTL_SECONDS))
            pipe.execute()
        except (DashqueryError, redis.RedisError) as exc:
            log.debug("heartbeat not written: %s", exc)
