"""The deployment-wide checks of ``dashquery status``: settings drift, materialized views
refreshed from an older daily view than the one deployed (a partial deploy), and Redis.

The first two read dbt's relations table (``catalog.RELATIONS_TABLE``: what each relation
was built from and for) and the watermarks' ``upstream_hash``, the bookkeeping the read path
checks too.
"""

from __future__ import annotations

from typing import Any

import psycopg
import redis
from psycopg import sql

from dashquery.cache.values import MetricsCache
from dashquery.config import Settings
from dashquery.ops.pg_errors import one_line

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


def outdated_views(
    cursor: psycopg.Cursor[Any], relations: sql.Composed, watermarks: sql.Composed
) -> dict[str, str]:
    """Materialized views refreshed from an older definition of a daily view they read."""
    name = watermarks.as_string(cursor.connection)
    columns = {row["attname"] for row in cursor.execute(_COLUMNS, (name,))}
    if "upstream_hash" not in columns:
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
