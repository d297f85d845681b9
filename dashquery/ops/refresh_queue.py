"""Draining the refresh queue that ``notify`` fills: one ``dbt run`` for every queued view,
then the organizations that asked are invalidated (see ``dashquery.ops.events``).

Kept apart from ``events`` because it runs dbt: ``notify`` is called by applications, which
install dashquery without the ``ops`` extra.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dashquery.catalog import MATERIALIZED_VIEWS, QUEUE_TABLE, WATERMARKS_TABLE
from dashquery.config import Settings
from dashquery.ops.dbt_runner import DbtResult, run_dbt
from dashquery.ops.events import enqueue, table
from dashquery.ops.pg_errors import pg_error

if TYPE_CHECKING:
    from dashquery.client import Client

# One statement: rows deleted by a concurrent drain are not returned here, so two drains
# never take the same entry.
_TAKE = sql.SQL(
    "delete from {queue} where view_name = any(%(known)s) returning view_name, requested_at, reason"
)
_UNKNOWN = sql.SQL("select view_name from {queue} where not (view_name = any(%(known)s))")
_WATERMARKS = sql.SQL(
    "select view_name, watermark from {} where view_name = any(%s) and last_failed_at is null"
)


@dataclass(frozen=True)
class QueuedView:
    view_name: str
    requested_at: dt.datetime
    reason: str | None

    def organizations(self) -> set[uuid.UUID] | None:
        """Organizations that asked for this refresh; None if unknown (a manual entry)."""
        orgs: set[uuid.UUID] = set()
        for token in (self.reason or "").split():
            try:
                orgs.add(uuid.UUID(token.rpartition(":")[2]))
            except ValueError:
                return None
        return orgs or None


@dataclass(frozen=True)
class DrainReport:
    """What ``drain_queue`` did; ``ok`` is False when dbt failed."""

    taken: tuple[QueuedView, ...] = ()
    refreshed: tuple[str, ...] = ()
    requeued: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    invalidated: tuple[uuid.UUID, ...] = ()
    invalidated_all: bool = False
    dbt: DbtResult | None = None

    @property
    def ok(self) -> bool:
        return self.dbt is None or self.dbt.returncode == 0


def drain_queue(
    client: Client, *, run: Callable[[Sequence[str], Settings], DbtResult] | None = None
) -> DrainReport:
    """Take every queued view, refresh them with one ``dbt run``, invalidate the askers.

    An entry counts as done when its view's new watermark is at or after its requested_at,
    i.e. the refresh read the tables after the change was committed. Anything else goes
    back into the queue: a failed refresh, or one skipped because a cron refresh held the
    view's advisory lock (that refresh may have started before the change).
    """
    settings = client.settings
    runner = run or (lambda args, s: run_dbt(args, s, check=False))
    known = list(MATERIALIZED_VIEWS)
    try:
        with _connect(settings) as conn:
            params = {"known": known}
            query = _UNKNOWN.format(queue=_queue(settings))
            unknown = tuple(r[0] for r in conn.execute(query, params))
            rows = conn.execute(_TAKE.format(queue=_queue(settings)), params).fetchall()
    except psycopg.Error as exc:
        raise pg_error(exc, "read the refresh queue", settings.schema) from exc
    taken = tuple(sorted((QueuedView(*row) for row in rows), key=lambda q: q.view_name))
    if not taken:
        return DrainReport(unknown=unknown)
    result: DbtResult | None = None
    try:
        # A queued change is one the capture triggers may not have recorded (capture off,
        # or a write that bypassed triggers): recompute these views whole, not incrementally.
        result = runner(
            [
                "run",
                "--select",
                *(q.view_name for q in taken),
                "--vars",
                "{dashquery_recompute_all: true}",
            ],
            settings,
        )
    finally:
        # Even when dbt could not start at all, nothing taken may be lost.
        done, requeued = _settle(settings, taken)
    refreshed = [q for q in taken if q.view_name in done]
    orgs: set[uuid.UUID] = set()
    invalidate_all = False
    for entry in refreshed:
        asked = entry.organizations()
        invalidate_all = invalidate_all or asked is None
        orgs |= asked or set()
    if invalidate_all:
        client.invalidate_all()
    else:
        for org in sorted(orgs):
            client.invalidate_org(org)
    return DrainReport(
        taken=taken,
        refreshed=tuple(q.view_name for q in refreshed),
        requeued=requeued,
        unknown=unknown,
        invalidated=() if invalidate_all else tuple(sorted(orgs)),
        invalidated_all=invalidate_all,
        dbt=result,
    )


def _settle(settings: Settings, taken: Sequence[QueuedView]) -> tuple[set[str], tuple[str, ...]]:
    """Which taken views were refreshed after their request; put the others back."""
    try:
        with _connect(settings) as conn:
            query = _WATERMARKS.format(table(settings, WATERMARKS_TABLE))
            marks = dict(conn.execute(query, ([q.view_name for q in taken],)).fetchall())
            done = {
                q.view_name
                for q in taken
                if q.view_name in marks and marks[q.view_name] >= q.requested_at
            }
            pending = [q for q in taken if q.view_name not in done]
            with conn.transaction():
                for entry in pending:
                    enqueue(conn, settings, [entry.view_name], entry.reason, entry.requested_at)
    except psycopg.Error as exc:
        what = f"put {', '.join(q.view_name for q in taken)} back in the refresh queue"
        raise pg_error(exc, what, settings.schema) from exc
    return done, tuple(q.view_name for q in pending)


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(settings.conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise pg_error(exc, "reach PostgreSQL for the refresh queue") from exc


def _queue(settings: Settings) -> sql.Composed:
    return table(settings, QUEUE_TABLE)
