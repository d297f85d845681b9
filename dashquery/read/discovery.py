"""What the read path finds in the view schema: which views it may read, whether they were
built for this client's settings, and the database identity the cache is keyed by.

Looked up on one connection at the first read and again when the ``Computer`` asks (a
vanished view, a changed fingerprint, every ``rediscover_seconds``). Anything that makes
the schema unusable as a whole raises ``Misconfigured`` here, at once: retrying cannot
create a schema nor rebuild views for another time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dashquery.catalog import (
    CHANGES_TABLE,
    DAILY_VIEWS,
    DEPLOYMENT_TABLE,
    MATERIALIZED_VIEWS,
    RELATIONS_TABLE,
    ROLLUP_RELATIONS,
    SPANS_RELATIONS,
    WATERMARKS_TABLE,
)
from dashquery.config import Settings, shown
from dashquery.errors import Misconfigured
from dashquery.read.bookkeeping_sql import DEPLOYMENT_KEY, Bookkeeping

# The bookkeeping the read path cannot answer without (the refresh log and queue are ops').
READ_BOOKKEEPING = (WATERMARKS_TABLE, RELATIONS_TABLE, DEPLOYMENT_TABLE)

_RELATIONS = sql.SQL(
    "select c.relname, c.relkind, c.relispopulated from pg_class c"
    " join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s"
)
_DATABASE = sql.SQL(
    "select current_database(), exists (select from pg_namespace where nspname = %s),"
    " has_function_privilege('pg_catalog.pg_control_system()', 'execute')"
)
_READABLE = (("m", True), ("r", True), ("p", True))
# Only run when permitted: the privilege is checked when the statement starts, even in an
# untaken CASE branch, so it cannot be folded into _DATABASE.
_SYSTEM_IDENTIFIER = sql.SQL("select system_identifier::text from pg_control_system()")


@dataclass(frozen=True)
class Deployment:
    """The views found and the identity parts; ``identity`` keys the cache (contract §4)."""

    available_views: frozenset[str]
    system_identifier: str
    database: str
    deployment_id: str
    fingerprint: str
    # Whether the change table (change capture's bookkeeping) exists: older deployments
    # have none, and then the hybrid statement carries no change terms.
    has_changes: bool = False

    @property
    def identity(self) -> str:
        return ":".join(
            (self.system_identifier, self.database, self.deployment_id, self.fingerprint)
        )

    def observed(self, check: Mapping[str, Any]) -> Deployment:
        """This deployment as a statement's ``DEPLOYMENT_KEY`` entry reports it."""
        return Deployment(
            self.available_views,
            self.system_identifier,
            self.database,
            str(check.get("deployment_id") or ""),
            str(check.get("fingerprint") or ""),
            self.has_changes,
        )


def no_views(settings: Settings, missing: str) -> Misconfigured:
    return Misconfigured(
        f"schema {shown(settings.schema)} has no dashquery views ({missing}):"
        " run `dbt build` with the same DASHQUERY_SCHEMA, or fix DASHQUERY_SCHEMA"
    )


def drift_error(
    schema: str, client: tuple[str, str], built_for: list[tuple[str, str]]
) -> Misconfigured:
    """Views built by dbt for other settings than the client's, naming both values."""
    timezone, source_schema = client
    built_zone, built_source = next(
        (z, s) for z, s in built_for if z != timezone or s != source_schema
    )
    if built_zone != timezone:
        what, built, used = "DASHQUERY_TIMEZONE", built_zone, timezone
    else:
        what, built, used = "DASHQUERY_SOURCE_SCHEMA", built_source, source_schema
    return Misconfigured(
        f"views in schema {shown(schema)} were built by dbt for {what}={shown(built)}"
        f" but this client uses {shown(used)}: rebuild with dbt or fix the setting"
    )


def check_statement(check: Mapping[str, Any] | None) -> None:
    """Raise ``Misconfigured`` when a statement's deployment check found views built for
    other settings (a rebuild for another zone under a running client)."""
    if check and check.get("built_for"):
        built = [(str(z), str(s)) for z, s in check["built_for"]]
        raise drift_error(
            str(check["schema"]), (str(check["timezone"]), str(check["source_schema"])), built
        )


def deployment_check(watermarks: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return (watermarks or {}).get(DEPLOYMENT_KEY)


def discover(settings: Settings, conn: psycopg.Connection[Any]) -> Deployment:
    """Look the schema up; raise ``Misconfigured`` if it cannot answer for these settings."""
    row = conn.execute(_DATABASE, (settings.schema,)).fetchone()
    assert row is not None
    database, schema_exists, may_read_control = row
    if not schema_exists:
        raise no_views(settings, "the schema does not exist")
    kinds: dict[str, tuple[str, bool]] = {
        name: (kind, populated)
        for name, kind, populated in conn.execute(_RELATIONS, (settings.schema,)).fetchall()
    }
    missing = [name for name in (*READ_BOOKKEEPING, *DAILY_VIEWS) if name not in kinds]
    if missing:
        raise no_views(settings, "missing: " + ", ".join(missing))
    # The materialized relation is a populated materialized view or a table (the incremental
    # strategy's); a materialized view never populated (a failed first build) cannot be read.
    # A block's rollups table (incremental strategy) is read only beside its materialized
    # relation; without one (the concurrent strategy, an older deployment) its day rows are.
    # The customer days' spans tables likewise (without them every customer's days are tested).
    usable = {
        name
        for name in (*MATERIALIZED_VIEWS, *ROLLUP_RELATIONS, *SPANS_RELATIONS)
        if kinds.get(name) in _READABLE
    }
    bookkeeping = Bookkeeping(settings)
    built_for = conn.execute(bookkeeping.built_for()).fetchall()
    client = (settings.timezone, settings.source_schema)
    if any(tuple(pair) != client for pair in built_for):
        raise drift_error(settings.schema, client, [tuple(pair) for pair in built_for])
    deployment = conn.execute(bookkeeping.deployment_id()).fetchone()
    fingerprint = conn.execute(bookkeeping.fingerprint()).fetchone()
    system_identifier = ""
    if may_read_control:
        found = conn.execute(_SYSTEM_IDENTIFIER).fetchone()
        system_identifier = str(found[0]) if found else ""
    return Deployment(
        frozenset(usable),
        system_identifier,
        str(database),
        str(deployment[0] or "") if deployment else "",
        str(fingerprint[0] or "") if fingerprint else "",
        has_changes=kinds.get(CHANGES_TABLE, ("", False))[0] in ("r", "p"),
    )
