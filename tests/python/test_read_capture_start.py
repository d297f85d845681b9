"""A materialized block refreshed before the capture triggers were installed may hold changes
nobody recorded: the read path reads it live until its next refresh (contract §5: with capture
on, every computed result is exact), and dbt orders every block after the capture model, so a
``dbt build`` never leaves one in that state.
"""

from __future__ import annotations

import datetime as dt

from psycopg import sql

from dashquery import Client
from dashquery.catalog import (
    CAPTURE_SINCE_COLUMN,
    DEPLOYMENT_TABLE,
    MATERIALIZED_VIEWS,
    WATERMARKS_TABLE,
)
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import run_dbt
from tests.python.helpers import SCRATCH_SEED, assert_matches_naive, build_dashboard, business_today


def test_blocks_refreshed_before_capture_started_are_read_live_until_refreshed(
    stack: LocalStack, redis_url: str
) -> None:
    dashboard = build_dashboard(stack, redis_url, seed=SCRATCH_SEED, orgs=1)
    settings = dashboard.settings
    org = dashboard.organization_ids[0]
    today = business_today(settings)
    schema = sql.Identifier(settings.schema)
    with dashboard.connect() as conn, Client(settings=settings, cache=False) as client:
        since, oldest = conn.execute(
            sql.SQL("select d.{}, (select min(watermark) from {}.{}) from {}.{} as d").format(
                sql.Identifier(CAPTURE_SINCE_COLUMN),
                schema,
                sql.Identifier(WATERMARKS_TABLE),
                schema,
                sql.Identifier(DEPLOYMENT_TABLE),
            )
        ).fetchone()
        # dbt build installs capture first: every block's watermark is at or after it.
        assert since is not None and oldest >= since
        result = client.get_metrics(org, today - dt.timedelta(days=400), today)
        assert all(f.live_reason is None for f in result.freshness.values()), result.freshness

        # Capture (re)started after the blocks' refreshes: a back-dated change made before it
        # is in no change record, so the blocks can no longer be trusted.
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")  # no triggers
            conn.execute(
                sql.SQL(
                    "update {}.orders set deleted_at = now() where id = (select id from {}.orders"
                    " where organization_id = %s and deleted_at is null"
                    " and created_at < now() - interval '100 days' limit 1)"
                ).format(
                    sql.Identifier(settings.source_schema), sql.Identifier(settings.source_schema)
                ),
                (org,),
            )
            conn.execute(
                sql.SQL("update {}.{} set {} = now()").format(
                    schema, sql.Identifier(DEPLOYMENT_TABLE), sql.Identifier(CAPTURE_SINCE_COLUMN)
                )
            )
        client.computer.forget_views()
        stale = client.get_metrics(org, today - dt.timedelta(days=400), today)
        reasons = {block: f.live_reason for block, f in stale.freshness.items()}
        assert all(r and "before change capture started" in r for r in reasons.values()), reasons
        assert_matches_naive(conn, settings, stale)

        run_dbt(["run", "--select", *MATERIALIZED_VIEWS], settings)
        fresh = client.get_metrics(org, today - dt.timedelta(days=400), today)
        assert all(f.live_reason is None for f in fresh.freshness.values()), fresh.freshness
        assert_matches_naive(conn, settings, fresh)
