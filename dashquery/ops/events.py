"""Event-driven freshness without triggers on the application's tables.

The application calls ``notify(organization_id, event, occurred_on)`` after committing a
change. The organization's cached results are dropped at once (today's days are read live,
so the next computed result already has the change). When ``occurred_on`` is before today
the change rewrote history that the materialized views hold, so the affected views
(``catalog.EVENT_VIEWS``) are queued in the refresh queue (``catalog.QUEUE_TABLE``);
``dashquery refresh --queued`` (cron, every minute) drains the queue with one ``dbt run``
(``dashquery.ops.refresh_queue``: it needs dbt, which an application calling ``notify`` does
not). The cron cadences refresh every view anyway: the queue only shortens how long a
back-dated change takes to appear, from a cadence to about a minute, so a stopped drain
degrades freshness and never correctness.

Queue rows carry, in ``reason``, the set of ``<event>:<organization_id>`` tokens that asked
for them, so a drain can invalidate exactly those organizations once their views are
refreshed (a result computed between notify and the refresh still held the old history).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from dashquery.catalog import EVENT_VIEWS, QUEUE_TABLE
from dashquery.config import Settings, shown
from dashquery.errors import InvalidQuery
from dashquery.ops.pg_errors import pg_error
from dashquery.read.request import parse_date, parse_organization_id, strip_blanks

if TYPE_CHECKING:
    from dashquery.client import Client

# Upsert keeping the earliest requested_at (a drain compares it with the new watermark)
# and the union of the reason tokens, deduplicated.
_ENQUEUE = sql.SQL(
    """insert into {queue} as q (view_name, requested_at, reason)
values (%(view)s, coalesce(%(requested_at)s::timestamptz, now()), %(reason)s)
on conflict (view_name) do update set
    requested_at = least(q.requested_at, excluded.requested_at),
    reason = (
        select string_agg(distinct token, ' ' order by token)
        from unnest(string_to_array(concat_ws(' ', q.reason, excluded.reason), ' ')) as token
        where token <> ''
    )"""
)
# The ISO forms an application sends, in ASCII: datetime.fromisoformat alone also takes
# ISO week dates, basic forms and other separators, which name some other instant.
_DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def parse_occurred_on(value: object, zone: ZoneInfo) -> dt.date | None:
    """The business day of an event: a date, an aware datetime, or an ISO string of either."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidQuery(
                f"occurred_on={value!r} is a naive datetime: pass a date in the business"
                " time zone or an aware datetime"
            )
        return value.astimezone(zone).date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise InvalidQuery(
            f"occurred_on must be a date, datetime or ISO string, not {type(value).__name__}"
        )
    text = strip_blanks(value)
    if len(text) == 10:
        return parse_date(text, "occurred_on")  # the request's own date rules
    try:
        if not _DATETIME_TEXT.fullmatch(text):
            raise ValueError(text)
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(f"occurred_on={shown(value)} is not an ISO date or datetime") from None
    return parse_occurred_on(parsed, zone)


def views_for(event: str, occurred_on: dt.date | None, today: dt.date) -> tuple[str, ...]:
    """The views to refresh for an event: none unless it changed a day before today."""
    views = EVENT_VIEWS.get(event) if isinstance(event, str) else None
    if views is None:
        named = shown(event) if isinstance(event, str) else f"a {type(event).__name__}"
        raise InvalidQuery(f"event={named} is not one of {', '.join(sorted(EVENT_VIEWS))}")
    return views if occurred_on is not None and occurred_on < today else ()


def notify(
    client: Client, organization_id: uuid.UUID | str, event: str, occurred_on: object = None
) -> tuple[str, ...]:
    """Invalidate the organization's cache; queue the views a back-dated change affects.

    Call it after the application's transaction commits. ``occurred_on`` is the business
    day the changed row is counted on (see docs/OPERATIONS.md), None meaning today. Returns
    the views queued. Raises ``InvalidQuery`` naming a bad argument; when the queue cannot be
    written, ``Misconfigured`` (no bookkeeping table, no privilege) or ``Unavailable`` (the
    cache is invalidated in any case).
    """
    settings = client.settings
    org = parse_organization_id(organization_id)
    day = parse_occurred_on(occurred_on, settings.zone)
    views = views_for(event, day, dt.datetime.now(settings.zone).date())
    client.invalidate_org(org)
    if views:
        try:
            with client.pool.connection() as conn:
                enqueue(conn, settings, views, f"{event}:{org}")
        except (psycopg.Error, OSError) as exc:
            what = f"queue {', '.join(views)} for refresh"
            raise pg_error(exc, what, settings.schema) from exc
    return views


def enqueue(
    conn: psycopg.Connection[Any],
    settings: Settings,
    views: Iterable[str],
    reason: str | None,
    requested_at: dt.datetime | None = None,
) -> None:
    statement = _ENQUEUE.format(queue=table(settings, QUEUE_TABLE))
    with conn.cursor() as cursor:
        cursor.executemany(
            statement,
            [{"view": v, "requested_at": requested_at, "reason": reason} for v in views],
        )


def table(settings: Settings, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(settings.schema), sql.Identifier(name))
