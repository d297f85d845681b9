"""The hybrid read of contract §5 as one SQL statement, built once per configuration.

For every block, days before day(watermark) come from the block's materialized view and
days from day(watermark) on from the plain daily view the materialized view is built from,
so both halves share one definition (the dbt model). The statement reads the watermarks in
the same snapshot as the data, so the split always matches what the views hold.

Schema names and the time zone are written into the statement text (composed with
``psycopg.sql``), never bound: a prepared statement's generic plan can then still match the
expression indexes on ``(organization_id, day(ts))``. Request values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from psycopg import sql

from dashquery.catalog import CLAIM_STATUSES, CLAIM_TYPES, JOB_STATUSES, OPPORTUNITY_STAGES
from dashquery.config import Settings


@dataclass(frozen=True)
class DailyBlock:
    """A daily view, the materialized view built from it, and its additive columns."""

    name: str
    view: str
    materialized_view: str
    columns: tuple[str, ...]


DAILY_BLOCKS: tuple[DailyBlock, ...] = (
    DailyBlock(
        "orders",
        "daily_orders",
        "mv_daily_orders",
        (
            "orders_count",
            "delivered_orders",
            "pending_orders",
            "cancelled_orders",
            "non_cancelled_orders",
            "total_order_value_cents",
            "revenue_cents",
        ),
    ),
    DailyBlock("energy", "daily_energy", "mv_daily_energy", ("kwh_deployed",)),
    DailyBlock(
        "pipeline",
        "daily_pipeline",
        "mv_daily_pipeline",
        (
            "new_opportunities",
            *(f"opportunities_stage_{stage}" for stage in OPPORTUNITY_STAGES),
            "pipeline_value_cents",
            "weighted_pipeline_cents",
            "won_opportunities",
            "lost_opportunities",
            "won_value_cents",
        ),
    ),
    DailyBlock(
        "jobs",
        "daily_jobs",
        "mv_daily_jobs",
        (
            "jobs_scheduled",
            *(f"jobs_status_{status}" for status in JOB_STATUSES),
            "estimated_hours",
            "jobs_completed",
            "labor_hours",
        ),
    ),
    DailyBlock(
        "warranty",
        "daily_warranty",
        "mv_daily_warranty",
        (
            "warranty_claims",
            *(f"claims_status_{status}" for status in CLAIM_STATUSES),
            *(f"claims_type_{claim_type}" for claim_type in CLAIM_TYPES),
            "resolved_claims",
            "resolution_seconds",
        ),
    ),
)
CUSTOMER_DAYS_VIEW = "daily_order_customers"
CUSTOMER_DAYS_MV = "mv_order_customer_days"
CURRENT_STATE_VIEW = "current_state"
CURRENT_STATE_MV = "mv_current_state"
CURRENT_STATE_COLUMNS = (
    "active_installations",
    "open_warranty_claims",
    "current_pipeline_cents",
    "active_customers",
)
MATERIALIZED_VIEWS: tuple[str, ...] = (
    *(block.materialized_view for block in DAILY_BLOCKS),
    CUSTOMER_DAYS_MV,
    CURRENT_STATE_MV,
)
WATERMARKS_TABLE = "dashquery_watermarks"
# Bookkeeping written by dbt (macros/bookkeeping.sql): what was built, from which definition
# and for which settings, and the deployment's random id.
RELATIONS_TABLE = "dashquery_relations"
DEPLOYMENT_TABLE = "dashquery_deployment"
# The key of the statement's watermarks JSON that holds the deployment check, not a view.
DEPLOYMENT_KEY = "_deployment"

# Ratios divide numeric sums in SQL, exactly as the naive query does, so both agree digit
# for digit instead of differing in the 17th decimal.
_FINAL_METRICS = """
    orders.orders_count, orders.delivered_orders, orders.pending_orders,
    orders.cancelled_orders, orders.total_order_value_cents, orders.revenue_cents,
    orders.total_order_value_cents / nullif(orders.non_cancelled_orders, 0)
        as average_order_value_cents,
    customers.unique_customers,
    energy.kwh_deployed,
    pipeline.*,
    pipeline.won_opportunities / nullif(pipeline.won_opportunities + pipeline.lost_opportunities, 0)
        as quote_win_rate,
    pipeline.won_value_cents / nullif(pipeline.won_opportunities, 0) as average_won_deal_cents,
    jobs.*,
    warranty.*,
    warranty.resolution_seconds / 3600 / nullif(warranty.resolved_claims, 0)
        as average_resolution_hours,
    current_state.*
"""


class HybridStatements:
    """SQL for one configuration, given which materialized views exist right now.

    A view that is missing (a fresh deploy, a failed first build) is simply not read: its
    block comes live from the daily view, and the freshness says why.
    """

    def __init__(self, settings: Settings, available_views: Collection[str]) -> None:
        self.settings = settings
        self.available_views = frozenset(available_views)
        self.schema = sql.Identifier(settings.schema)
        self.zone = sql.Literal(settings.timezone)

    def relation(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.schema, sql.Identifier(name))

    def split_day(self, materialized_view: str) -> sql.Composable:
        """First day read live: day(watermark), or -infinity when the view can't be used."""
        if materialized_view not in self.available_views:
            return sql.SQL("'-infinity'::date")
        return sql.SQL("(select split_day from watermarks where view_name = {})").format(
            sql.Literal(materialized_view)
        )

    def watermarks_cte(self) -> sql.Composed:
        """The watermarks, each with the first day read live (``split_day``).

        A view whose last refresh failed may hold data of an older definition, and one whose
        upstream_hash differs from its daily views' definition hashes now was built from an
        older definition (a partial deploy): both are read live (split_day = -infinity).
        Checked here, in the statement's own snapshot, so the split always matches the data.
        """
        return sql.SQL(
            """watermarks as (
    select w.view_name, w.watermark, w.last_failed_at, w.upstream_views, u.is_current,
        case when w.last_failed_at is null and u.is_current
            then (w.watermark at time zone {zone})::date
            else '-infinity'::date end as split_day
    from {table} as w cross join lateral (
        select w.upstream_hash is not distinct from (
            select string_agg(r.definition_hash, ',' order by r.relation_name)
            from {relations} as r where r.relation_name = any(w.upstream_views)
        ) as is_current
    ) as u
)"""
        ).format(
            zone=self.zone,
            table=self.relation(WATERMARKS_TABLE),
            relations=self.relation(RELATIONS_TABLE),
        )

    def daily_rows(self, block: DailyBlock) -> sql.Composed:
        """The block's daily rows in the request's range: materialized, then live days."""
        selected = sql.SQL(", ").join(sql.Identifier(c) for c in ("business_day", *block.columns))
        live = sql.SQL(
            "select {cols} from {view} where organization_id = %(organization_id)s"
            " and business_day between greatest(%(date_from)s::date, {split})"
            " and %(date_to)s::date"
        ).format(
            cols=selected,
            view=self.relation(block.view),
            split=self.split_day(block.materialized_view),
        )
        if block.materialized_view not in self.available_views:
            return live
        materialized = sql.SQL(
            "select {cols} from {mv} where organization_id = %(organization_id)s"
            " and business_day between %(date_from)s::date and %(date_to)s::date"
            " and business_day < {split}"
        ).format(
            cols=selected,
            mv=self.relation(block.materialized_view),
            split=self.split_day(block.materialized_view),
        )
        return sql.SQL("{} union all {}").format(materialized, live)

    def block_totals(self, block: DailyBlock) -> sql.Composed:
        sums = sql.SQL(", ").join(
            sql.SQL("coalesce(sum({c}), 0) as {c}").format(c=sql.Identifier(c))
            for c in block.columns
        )
        return sql.SQL("{name} as (select {sums} from ({rows}) as days)").format(
            name=sql.Identifier(block.name), sums=sums, rows=self.daily_rows(block)
        )

    def unique_customers(self) -> sql.Composed:
        """Customers of the range: distinct over every arm, never a sum of daily counts.

        ``count(distinct)`` over ``union all`` deduplicates whatever the number of arms: with
        the materialized view unusable there is only the live arm, which has one row per
        (customer, day), and a plain ``union`` of one arm deduplicates nothing.
        """
        split = self.split_day(CUSTOMER_DAYS_MV)
        live = sql.SQL(
            "select customer_id from {view} where organization_id = %(organization_id)s"
            " and business_day between greatest(%(date_from)s::date, {split})"
            " and %(date_to)s::date"
        ).format(view=self.relation(CUSTOMER_DAYS_VIEW), split=split)
        arms = [live]
        if CUSTOMER_DAYS_MV in self.available_views:
            # [date_from, min(date_to + 1, split)), empty when the split is at or before date_from
            arms.insert(
                0,
                sql.SQL(
                    "select customer_id from {mv} where organization_id = %(organization_id)s"
                    " and order_days && daterange(%(date_from)s::date,"
                    " greatest(%(date_from)s::date, least(%(date_to)s::date + 1, {split})), '[)')"
                ).format(mv=self.relation(CUSTOMER_DAYS_MV), split=split),
            )
        return sql.SQL(
            "customers as (select count(distinct customer_id) as unique_customers"
            " from ({}) as range_customers)"
        ).format(sql.SQL(" union all ").join(arms))

    def current_state(self) -> sql.Composed:
        """The snapshot from mv_current_state, or live when it can't serve this organization."""
        columns = sql.SQL(", ").join(map(sql.Identifier, CURRENT_STATE_COLUMNS))
        sums = sql.SQL(", ").join(
            sql.SQL("coalesce(sum({c}), 0) as {c}").format(c=sql.Identifier(c))
            for c in CURRENT_STATE_COLUMNS
        )
        live = sql.SQL(
            "select {cols}, true as is_live from {view} where organization_id = %(organization_id)s"
        ).format(cols=columns, view=self.relation(CURRENT_STATE_VIEW))
        if CURRENT_STATE_MV in self.available_views:
            usable = sql.SQL("{split} > '-infinity'::date").format(
                split=self.split_day(CURRENT_STATE_MV)
            )
            from_mv = sql.SQL(
                "select {cols}, false as is_live from {mv}"
                " where organization_id = %(organization_id)s and {usable}"
            ).format(cols=columns, mv=self.relation(CURRENT_STATE_MV), usable=usable)
            live = sql.SQL(
                "{from_mv} union all {live} and not exists ("
                "select from {mv} where organization_id = %(organization_id)s and {usable})"
            ).format(from_mv=from_mv, live=live, mv=self.relation(CURRENT_STATE_MV), usable=usable)
        return sql.SQL(
            "current_state as (select {sums}, coalesce(bool_or(is_live), true)"
            " as current_state_is_live from ({rows}) as snapshot)"
        ).format(sums=sums, rows=live)

    def freshness_column(self) -> sql.Composed:
        """The watermarks as JSON, plus under ``DEPLOYMENT_KEY`` what the read path checks
        on every statement: the settings of relations built for other settings than the
        client's, and the deployment id and definitions fingerprint of the cache identity."""
        return sql.SQL(
            "(select coalesce(jsonb_object_agg(view_name, jsonb_build_object("
            "'watermark', watermark, 'split_day', split_day, 'failed', last_failed_at is not null,"
            " 'current', is_current, 'upstream_views', upstream_views"
            ")), '{{}}') from watermarks) || jsonb_build_object({key}, jsonb_build_object("
            "'schema', {schema}, 'timezone', {zone}, 'source_schema', {source},"
            " 'built_for', (select jsonb_agg(distinct jsonb_build_array(timezone, source_schema))"
            " from {relations} where timezone <> {zone} or source_schema <> {source}),"
            " 'fingerprint', ({fingerprint}),"
            " 'deployment_id', (select min(deployment_id::text) from {deployment})"
            ")) as watermarks"
        ).format(
            key=sql.Literal(DEPLOYMENT_KEY),
            schema=sql.Literal(self.settings.schema),
            zone=self.zone,
            source=sql.Literal(self.settings.source_schema),
            relations=self.relation(RELATIONS_TABLE),
            fingerprint=self.fingerprint(),
            deployment=self.relation(DEPLOYMENT_TABLE),
        )

    def fingerprint(self) -> sql.Composed:
        """md5 of every built relation's definition hash: changes with any deploy."""
        return sql.SQL(
            "select md5(coalesce(string_agg(relation_name || ':' || definition_hash, ','"
            " order by relation_name), '')) from {}"
        ).format(self.relation(RELATIONS_TABLE))

    def metrics(self) -> sql.Composed:
        """One statement, one row: every §3 key (breakdowns as columns) and the watermarks."""
        ctes = [
            self.watermarks_cte(),
            *(self.block_totals(block) for block in DAILY_BLOCKS),
            self.unique_customers(),
            self.current_state(),
        ]
        return sql.SQL("with {ctes} select {final}, {freshness} from {sources}").format(
            ctes=sql.SQL(",\n").join(ctes),
            final=sql.SQL(_FINAL_METRICS),
            freshness=self.freshness_column(),
            sources=sql.SQL(", ").join(
                map(
                    sql.Identifier,
                    (
                        "orders",
                        "customers",
                        "energy",
                        "pipeline",
                        "jobs",
                        "warranty",
                        "current_state",
                    ),
                )
            ),
        )
