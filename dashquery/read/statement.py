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

from psycopg import sql

from dashquery.catalog import CURRENT_STATE, CUSTOMER_DAYS, DAILY_BLOCKS, DailyBlock
from dashquery.config import Settings
from dashquery.read.bookkeeping_sql import Bookkeeping

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
    {current_state}.*
"""


class HybridStatements(Bookkeeping):
    """SQL for one configuration, given which materialized views exist right now.

    A view that is missing (a fresh deploy, a failed first build) is simply not read: its
    block comes live from the daily view, and the freshness says why.
    """

    def __init__(self, settings: Settings, available_views: Collection[str]) -> None:
        super().__init__(settings)
        self.available_views = frozenset(available_views)

    def split_day(self, materialized_view: str) -> sql.Composable:
        """First day read live: day(watermark), or -infinity when the view can't be used."""
        if materialized_view not in self.available_views:
            return sql.SQL("'-infinity'::date")
        return sql.SQL("(select split_day from watermarks where view_name = {})").format(
            sql.Literal(materialized_view)
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
        days = CUSTOMER_DAYS
        split = self.split_day(days.materialized_view)
        distinct = sql.Identifier(days.distinct)
        live = sql.SQL(
            "select {distinct} from {view} where organization_id = %(organization_id)s"
            " and business_day between greatest(%(date_from)s::date, {split})"
            " and %(date_to)s::date"
        ).format(distinct=distinct, view=self.relation(days.view), split=split)
        arms = [live]
        if days.materialized_view in self.available_views:
            # [date_from, min(date_to + 1, split)), empty when the split is at or before date_from
            arms.insert(
                0,
                sql.SQL(
                    "select {distinct} from {mv} where organization_id = %(organization_id)s"
                    " and order_days && daterange(%(date_from)s::date,"
                    " greatest(%(date_from)s::date, least(%(date_to)s::date + 1, {split})), '[)')"
                ).format(distinct=distinct, mv=self.relation(days.materialized_view), split=split),
            )
        return sql.SQL(
            "customers as (select count(distinct {distinct}) as unique_customers"
            " from ({arms}) as range_customers)"
        ).format(distinct=distinct, arms=sql.SQL(" union all ").join(arms))

    def current_state(self) -> sql.Composed:
        """The snapshot from its materialized view, or live when that can't serve this
        organization (no usable view, or no row for it)."""
        state = CURRENT_STATE
        columns = sql.SQL(", ").join(map(sql.Identifier, state.columns))
        sums = sql.SQL(", ").join(
            sql.SQL("coalesce(sum({c}), 0) as {c}").format(c=sql.Identifier(c))
            for c in state.columns
        )
        live = sql.SQL(
            "select {cols}, true as is_live from {view} where organization_id = %(organization_id)s"
        ).format(cols=columns, view=self.relation(state.view))
        if state.materialized_view in self.available_views:
            mv = self.relation(state.materialized_view)
            usable = sql.SQL("{split} > '-infinity'::date").format(
                split=self.split_day(state.materialized_view)
            )
            from_mv = sql.SQL(
                "select {cols}, false as is_live from {mv}"
                " where organization_id = %(organization_id)s and {usable}"
            ).format(cols=columns, mv=mv, usable=usable)
            live = sql.SQL(
                "{from_mv} union all {live} and not exists ("
                "select from {mv} where organization_id = %(organization_id)s and {usable})"
            ).format(from_mv=from_mv, live=live, mv=mv, usable=usable)
        return sql.SQL(
            "{name} as (select {sums}, coalesce(bool_or(is_live), true)"
            " as current_state_is_live from ({rows}) as snapshot)"
        ).format(name=sql.Identifier(state.name), sums=sums, rows=live)

    def metrics(self) -> sql.Composed:
        """One statement, one row: every §3 key (breakdowns as columns) and the watermarks."""
        ctes = [
            self.watermarks_cte(),
            *(self.block_totals(block) for block in DAILY_BLOCKS),
            self.unique_customers(),
            self.current_state(),
        ]
        sources = (*(block.name for block in DAILY_BLOCKS), "customers", CURRENT_STATE.name)
        return sql.SQL("with {ctes} select {final}, {freshness} from {sources}").format(
            ctes=sql.SQL(",\n").join(ctes),
            final=sql.SQL(_FINAL_METRICS).format(current_state=sql.Identifier(CURRENT_STATE.name)),
            freshness=self.freshness_column(),
            sources=sql.SQL(", ").join(map(sql.Identifier, sources)),
        )
