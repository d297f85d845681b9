"""The listener's fallback poll (``dashquery.ops.listen``): one round trip for what changed
since the previous poll and the identity parts a deploy changes."""

from __future__ import annotations

from psycopg import sql

from dashquery.catalog import CHANGES_TABLE, RUNS_TABLE
from dashquery.read.bookkeeping_sql import Bookkeeping

# The organizations of the change rows committed after the previous poll's snapshot
# (``%(seen)s``) and of the change rows refreshes committed since consumed (a refresh may
# delete a row before any poll saw it: the run records whom it consumed, and in which
# transaction), the snapshot of this statement, and the identity parts a deploy changes: one
# round trip.
_POLL = """select pg_current_snapshot()::text as snapshot, ({deployment}) as deployment_id,
    ({fingerprint}) as fingerprint,
    case when %(seen)s::pg_snapshot is null then '{{}}'::uuid[] else array(
        select organization_id from {changes}
        where xact_id >= pg_snapshot_xmin(%(seen)s::pg_snapshot)
            and not pg_visible_in_snapshot(xact_id, %(seen)s::pg_snapshot)
        union
        select unnest(consumed_organizations) from {runs}
        where consumed_xact >= pg_snapshot_xmin(%(seen)s::pg_snapshot)
            and not pg_visible_in_snapshot(consumed_xact, %(seen)s::pg_snapshot)
    ) end as organizations"""
SNAPSHOT_ONLY = "select pg_current_snapshot()::text, null, null, '{}'::uuid[]"


def poll_statement(bookkeeping: Bookkeeping) -> sql.Composed:
    return sql.SQL(_POLL).format(
        deployment=bookkeeping.deployment_id(),
        fingerprint=bookkeeping.fingerprint(),
        changes=bookkeeping.relation(CHANGES_TABLE),
        runs=bookkeeping.relation(RUNS_TABLE),
    )
