"""The deployment-wide checks of ``dashquery status``: settings drift, materialized views
refreshed from an older daily view than the one deployed (a partial deploy), and Redis.

The first two read dbt's relations table (``catalog.RELATIONS_TABLE``: what each relation
was built from and for) and the watermarks' ``upstream_hash``, the bookkeeping the read path
checks too. ``check_listener``: whether ``dashquery listen`` is connected and its heartbeat.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import redis
from psycopg import sql

from dashquery.cache.values import MetricsCache, cache_namespace
from dashquery.catalog import (
    CAPTURE_COLUMN,
    CAPTURE_SINCE_COLUMN,
    CHANGES_TABLE,
    LISTENER_APPLICATION_NAME,
)
from dashquery.config import Settings
from dashquery.errors import DashqueryError
from dashquery.ops.listen import heartbeat_key
from dashquery.ops.pg_errors import one_line
from dashquery.ops.status_report import ListenerStatus
from dashquery.read.discovery import discover

# Without a maxmemory limit nothing is evicted. Under a volatile-* policy only keys with a
# TTL are (cached values, locks): never the generation counters, which have none. Under
# noeviction a full Redis refuses the INCR of an invalidation (OOM), and allkeys-* may evict
# a counter, which then restarts at a number an older value was stored under.
SAFE_MAXMEMORY_POLICIES = frozenset(
    {"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
)
_BUILT_FOR = sql.SQL(
    "select timezone, source_schema, array_agg(relation_name order by relation_name) as names"
    " from {} group by timezone, source_schema order by timezone, source_schema"
)
# The read path's own test (design: watermarks.upstream_hash against the same aggregate
# now); the upstream views rebuilt after the refresh are the ones that changed.
_OUTDATED = sql.SQL(
    """select w.view_name, w.upstream_views,
    array(select r.relation_name from {relations} r
          where r.relation_name = any(w.upstream_views) and r.built_at > w.refreshed_at
          order by r.relation_name) as rebuilt
from {watermarks} w
where w.upstream_views is not null and w.upstream_hash is distinct from (
    select string_agg(r.definition_hash, ',' order by r.relation_name)
    from {relations} r where r.relation_name = any(w.upstream_views))"""
)
# Refreshed before the capture triggers were in place: changes before capture_since have no
# change rows, so the read path reads the view live (watermarks_cte: is_captured) until its
# next refresh.
_UNCAPTURED = sql.SQL(
    "select w.view_name, d.{since} as capture_since from {watermarks} w cross join {deployment} d"
    " where d.{on} and w.watermark < d.{since}"
)
_COLUMNS = sql.SQL(
    "select attname from pg_attribute"
    " where attrelid = %s::regclass and attnum > 0 and not attisdropped"
)


def settings_drift(
    cursor: psycopg.Cursor[Any], relations: sql.Composed, settings: Settings
) -> list[str]:
    """One problem per setting dbt built some relations with that differs from ours."""
    problems = []
    for row in cursor.execute(_BUILT_FOR.format(relations)):
        for variable, built, ours in (
            ("DASHQUERY_TIMEZONE", row["timezone"], settings.timezone),
            ("DASHQUERY_SOURCE_SCHEMA", row["source_schema"], settings.source_schema),
        ):
            if built != ours:
                problems.append(
                    f"settings: views in schema {settings.schema!r} ({', '.join(row['names'])})"
                    f" were built by dbt for {variable}={built!r} but these settings use"
                    f" {ours!r}: rebuild with dbt or fix the setting"
                )
    return problems


def _columns(cursor: psycopg.Cursor[Any], relation: sql.Composed) -> set[str]:
    """The column names of a bookkeeping table: older deployments lack the newer columns."""
    name = relation.as_string(cursor.connection)
    return {row["attname"] for row in cursor.execute(_COLUMNS, (name,))}


def outdated_views(
    cursor: psycopg.Cursor[Any], relations: sql.Composed, watermarks: sql.Composed
) -> dict[str, str]:
    """Materialized views refreshed from an older definition of a daily view they read."""
    if "upstream_hash" not in _columns(cursor, watermarks):
        return {}  # bookkeeping from before upstream hashes: nothing to compare
    query = _OUTDATED.format(relations=relations, watermarks=watermarks)
    outdated = {}
    for row in cursor.execute(query):
        changed = row["rebuilt"] or row["upstream_views"]
        outdated[row["view_name"]] = (
            f"outdated: built from an older definition of {' or '.join(changed)};"
            f" rebuild with dbt run --select {row['view_name']}"
        )
    return outdated


def uncaptured_views(
    cursor: psycopg.Cursor[Any], watermarks: sql.Composed, deployment: sql.Composed
) -> dict[str, str]:
    """Views whose last refresh predates change capture: exact, but read live meanwhile."""
    if CAPTURE_SINCE_COLUMN not in _columns(cursor, deployment):
        return {}  # bookkeeping from before change capture
    query = _UNCAPTURED.format(
        watermarks=watermarks,
        deployment=deployment,
        on=sql.Identifier(CAPTURE_COLUMN),
        since=sql.Identifier(CAPTURE_SINCE_COLUMN),
    )
    return {
        row["view_name"]: (
            "outdated: refreshed before change capture started"
            f" ({row['capture_since'].isoformat(timespec='seconds')}), so it is read live"
            f" until its next refresh: dbt run --select {row['view_name']}"
        )
        for row in cursor.execute(query)
    }


def check_redis(url: str) -> str | None:
    """None when Redis answers and its maxmemory policy keeps invalidations; else why not."""
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        memory = client.info("memory")
    except redis.RedisError as exc:
        return f"redis: cannot reach Redis (DASHQUERY_REDIS_URL): {one_line(exc)}"
    finally:
        client.close()
    if hasattr(MetricsCache, "check_server"):
        # the cache owns the rule of which server configurations keep it correct
        return _cache_verdict(url)
    policy = str(memory.get("maxmemory_policy", ""))
    if int(memory.get("maxmemory", 0)) == 0 or policy in SAFE_MAXMEMORY_POLICIES:
        return None
    return (
        f"redis: maxmemory-policy {policy} with maxmemory set can lose an invalidation (an"
        " INCR refused or a generation counter evicted): use one of"
        f" {', '.join(sorted(SAFE_MAXMEMORY_POLICIES))}, or no maxmemory"
    )


def _cache_verdict(url: str) -> str | None:
    cache = MetricsCache(url, namespace="dq:status", timezone="UTC", socket_timeout=2.0)
    try:
        found: str | None = cache.check_server()  # type: ignore[attr-defined]
    finally:
        cache.close()
    return None if found is None else f"redis: {one_line(found)}"


# -- the listener (dashquery listen) --------------------------------------------------------

_LISTENERS = (
    "select count(*) as connected, min(backend_start) as since from pg_stat_activity"
    " where application_name = %s and datname = current_database()"
)


def check_listener(cursor: psycopg.Cursor[Any], settings: Settings) -> ListenerStatus:
    """Whether a ``dashquery listen`` is connected (pg_stat_activity: its application_name)
    and what its heartbeat (Redis, under the cache namespace) last said. Never raises for a
    listener that is missing: that is a warning, since correctness does not rest on it."""
    found = cursor.execute("select to_regclass(%s) is not null as capture", (
        sql.SQL("{}.{}").format(sql.Identifier(settings.schema), sql.Identifier(CHANGES_TABLE))
        .as_string(cursor.connection),
    )).fetchone()  # fmt: skip
    capture = bool(found and found["capture"])
    row = cursor.execute(_LISTENERS, (LISTENER_APPLICATION_NAME,)).fetchone()
    connected = int(row["connected"]) if row else 0
    beat: dict[str, str] | None = None
    beat_error = None
    try:
        namespace = cache_namespace(discover(settings, cursor.connection).identity, settings)
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0,
                                      socket_connect_timeout=2.0)  # fmt: skip
        try:
            raw = client.hgetall(heartbeat_key(namespace))
        finally:
            client.close()
        beat = {k.decode(): v.decode() for k, v in raw.items()} or None
    except (DashqueryError, redis.RedisError) as exc:
        beat_error = one_line(exc)

    def stamp(name: str) -> dt.datetime | None:
        value = (beat or {}).get(name)
        return dt.datetime.fromtimestamp(float(value), dt.UTC) if value else None

    warning = None
    if capture and not connected:
        warning = (
            f"listener: no `dashquery listen` is connected ({LISTENER_APPLICATION_NAME!r} not in"
            " pg_stat_activity): cached results of changed data are dropped only by their TTL;"
            " start it (docs/dashquery-listen.service)"
        )
    elif capture and beat is None:
        warning = (
            "listener: connected to PostgreSQL but no heartbeat under this cache namespace"
            f" ({beat_error or 'none in Redis'}): it may not reach Redis, or serve other settings"
        )
    return ListenerStatus(
        capture=capture,
        connected=connected,
        connected_since=(row["since"] if row else None),
        connected_at=stamp("connected_at"),
        last_notification_at=stamp("last_notification_at"),
        last_poll_at=stamp("last_poll_at"),
        notifications=int((beat or {}).get("notifications") or 0),
        warning=warning,
    )
