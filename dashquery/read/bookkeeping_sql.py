"""SQL over dbt's bookkeeping tables (``dashquery.catalog``: watermarks, relations,
deployment) in one view schema, as the read path runs it: the watermarks with the first day
each materialized view leaves to the live view, and the deployment check every hybrid
statement carries (settings drift, deployment id, definitions fingerprint).

Discovery runs these on their own; ``HybridStatements`` (a ``Bookkeeping``) puts them into
the same statement as the data, so they are read in the data's snapshot.
"""

from __future__ import annotations

from psycopg import sql

from dashquery.catalog import (
    CAPTURE_COLUMN,
    CAPTURE_SINCE_COLUMN,
    DEPLOYMENT_TABLE,
    RELATIONS_TABLE,
    WATERMARKS_TABLE,
)
from dashquery.config import Settings

# The key of the statement's watermarks JSON that holds the deployment check, not a view.
DEPLOYMENT_KEY = "_deployment"


class Bookkeeping:
    """The bookkeeping SQL of one configuration (schema, time zone, source schema)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema = sql.Identifier(settings.schema)
        self.zone = sql.Literal(settings.timezone)

    def relation(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.schema, sql.Identifier(name))

    def watermarks_cte(self, *, capture: bool = False) -> sql.Composed:
        """The watermarks, each with the first day read live (``split_day``).

        A view whose last refresh failed may hold data of an older definition, and one whose
        upstream_hash differs from its daily views' definition hashes now was built from an
        older definition (a partial deploy): both are read live (split_day = -infinity).
        With ``capture`` (the change table exists), a view refreshed before the capture
        triggers were installed (``capture_since``) may hold changes nobody recorded, so it is
        read live too until its next refresh (``is_captured``). Checked here, in the
        statement's own snapshot, so the split always matches the data. OFFSET 0 keeps the
        LATERAL subquery from being pulled up: pulled up, its two subplans ran once per use of
        its columns (twice per view); ~4-5% of the metrics statement (interleaved A/B at 10x).
        """
        captured = sql.SQL("true")
        if capture:
            captured = sql.SQL(
                "coalesce((select not d.{on} or w.watermark >= d.{since}"
                " from {deployment} as d), true)"
            ).format(
                on=sql.Identifier(CAPTURE_COLUMN),
                since=sql.Identifier(CAPTURE_SINCE_COLUMN),
                deployment=self.relation(DEPLOYMENT_TABLE),
            )
        return sql.SQL(
            """watermarks as (
    select w.view_name, w.watermark, w.last_failed_at, w.upstream_views, u.is_current,
        u.is_captured,
        case when w.last_failed_at is null and u.is_current and u.is_captured
            then (w.watermark at time zone {zone})::date
            else '-infinity'::date end as split_day
    from {table} as w cross join lateral (
        select w.upstream_hash is not distinct from (
            select string_agg(r.definition_hash, ',' order by r.relation_name)
            from {relations} as r where r.relation_name = any(w.upstream_views)
        ) as is_current,
        {captured} as is_captured
        offset 0
    ) as u
)"""
        ).format(
            zone=self.zone,
            table=self.relation(WATERMARKS_TABLE),
            relations=self.relation(RELATIONS_TABLE),
            captured=captured,
        )

    def freshness_column(self) -> sql.Composed:
        """The watermarks as JSON, plus under ``DEPLOYMENT_KEY`` what the read path checks
        on every statement: the settings of relations built for other settings than the
        client's, and the deployment id and definitions fingerprint of the cache identity."""
        return sql.SQL(
            "(select coalesce(jsonb_object_agg(view_name, jsonb_build_object("
            "'watermark', watermark, 'split_day', split_day, 'failed', last_failed_at is not null,"
            " 'current', is_current, 'captured', is_captured, 'upstream_views', upstream_views"
            ")), '{{}}') from watermarks) || jsonb_build_object({key}, jsonb_build_object("
            "'schema', {schema}, 'timezone', {zone}, 'source_schema', {source},"
            " 'built_for', (select jsonb_agg(distinct jsonb_build_array(timezone, source_schema))"
            " from {relations} where timezone <> {zone} or source_schema <> {source}),"
            " 'fingerprint', ({fingerprint}),"
            " 'deployment_id', ({deployment_id})"
            ")) as watermarks"
        ).format(
            key=sql.Literal(DEPLOYMENT_KEY),
            schema=sql.Literal(self.settings.schema),
            zone=self.zone,
            source=sql.Literal(self.settings.source_schema),
            relations=self.relation(RELATIONS_TABLE),
            fingerprint=self.fingerprint(),
            deployment_id=self.deployment_id(),
        )

    def fingerprint(self) -> sql.Composed:
        """md5 of every built relation's definition hash: changes with any deploy."""
        return sql.SQL(
            "select md5(coalesce(string_agg(relation_name || ':' || definition_hash, ','"
            " order by relation_name), '')) from {}"
        ).format(self.relation(RELATIONS_TABLE))

    def deployment_id(self) -> sql.Composed:
        """The deployment's random id (one row; min() yields null when there is none)."""
        return sql.SQL("select min(deployment_id::text) from {}").format(
            self.relation(DEPLOYMENT_TABLE)
        )

    def built_for(self) -> sql.Composed:
        """The settings the relations were built with, one row per distinct pair."""
        return sql.SQL("select distinct timezone, source_schema from {}").format(
            self.relation(RELATIONS_TABLE)
        )
