"""The hybrid read of contract §5 as one SQL statement, built once per configuration.

For every block, days before day(watermark) come from the block's materialized view and
days from day(watermark) on from the plain daily view the materialized view is built from,
so both halves share one definition (the dbt model). The statement reads the watermarks in
the same snapshot as the data, so the split always matches what the views hold.

With change capture (``catalog.CHANGES_TABLE`` exists: discovery says so), a day before the
split that is recorded as changed for the organization and daily view is read live too, in
the same statement and snapshot, and left out of the materialized arm (``changed_days``). The
live arm probes those days with ``business_day = any(array(...))``, an index condition the
expression indexes serve; the materialized arm stays a range scan with one more filter.

Schema names and the time zone are written into the statement text (composed with
``psycopg.sql``), never bound: a prepared statement's generic plan can then still match the
expression indexes on ``(organization_id, day(ts))``. Request values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Collection

from psycopg import sql

from dashquery.catalog import (
    CHANGES_TABLE,
    CURRENT_STATE,
    CUSTOMER_DAYS,
    DAILY_BLOCKS,
    DailyBlock,
    DistinctDays,
)
from dashquery.config import Settings
from dashquery.read import customers_sql, rollup_sql
from dashquery.read.bookkeeping_sql import Bookkeeping

# Ratios divide numeric sums in SQL, exactly as the naive query does, so both agree digit
# for digit instead of differing in the 17th decimal. Columns are unqualified: every
# column name is unique across the CTEs in FROM (one row each), which ``*`` returns whole.
_FINAL_METRICS = """
    *,
    total_order_value_cents / nullif(non_cancelled_orders, 0) as average_order_value_cents,
    won_opportunities / nullif(won_opportunities + lost_opportunities, 0) as quote_win_rate,
    won_value_cents / nullif(won_opportunities, 0) as average_won_deal_cents,
    resolution_seconds / 3600 / nullif(resolved_claims, 0) as average_resolution_hours
"""


class HybridStatements(Bookkeeping):
    """SQL for one configuration, given which materialized views exist right now.

    A view that is missing (a fresh deploy, a failed first build) is simply not read: its
    block comes live from the daily view, and the freshness says why.
    """

    def __init__(
        self, settings: Settings, available_views: Collection[str], *, changes: bool = False
    ) -> None:
        super().__init__(settings)
        self.available_views = frozenset(available_views)
        # Whether the change table exists: without it there are no change terms at all.
        self.changes = changes

    def ctes(self) -> list[sql.Composed]:
        """The CTEs every hybrid statement (metrics and series) starts with."""
        ctes = [self.watermarks_cte(capture=self.changes)]
        if self.changes:
            ctes.append(self.changed_days_cte())
        if any(self.has_rollups(block) for block in DAILY_BLOCKS):
            ctes.append(rollup_sql.spans_cte())
        return ctes

    def freshness_columns(self) -> sql.Composed:
        """The watermarks and, as ``changed_days``, {daily view: [days read live because
        they changed]}: what ``range_freshness`` reports."""
        if not self.changes:
            changed = sql.SQL("'{}'::jsonb")
        else:
            changed = sql.SQL(
                "(select coalesce(jsonb_object_agg(daily_view, days), '{}') from ("
                "select daily_view, jsonb_agg(business_day order by business_day) as days"
                " from changed_days group by daily_view) as by_view)"
            )
        return sql.SQL("{}, {} as changed_days").format(self.freshness_column(), changed)

    def changed_days_cte(self) -> sql.Composed:
        """The organization's days recorded as changed, per daily view, inside the request's
        range and before the split of the materialized view built from that daily view (days
        from the split on are read live anyway; a view that can't be used has no split)."""
        pairs = [
            sql.SQL("({}, {})").format(sql.Literal(r.view), sql.Literal(r.materialized_view))
            for r in (*DAILY_BLOCKS, CUSTOMER_DAYS)
            if r.materialized_view in self.available_views
        ]
        if not pairs:
            return sql.SQL(
                "changed_days as (select null::text as daily_view, null::date as business_day"
                " where false)"
            )
        return sql.SQL(
            """changed_days as (
    select distinct c.daily_view, c.business_day
    from {changes} as c
    join (values {pairs}) as r (daily_view, view_name) on r.daily_view = c.daily_view
    join watermarks as w on w.view_name = r.view_name
    where c.organization_id = %(organization_id)s
        and c.business_day between %(date_from)s::date and %(date_to)s::date
        and c.business_day < w.split_day
)"""
        ).format(changes=self.relation(CHANGES_TABLE), pairs=sql.SQL(", ").join(pairs))

    def changed(self, daily_view: str) -> sql.Composed:
        """The changed days of one daily view as an array (an initplan: one evaluation)."""
        return sql.SQL("array(select business_day from changed_days where daily_view = {})").format(
            sql.Literal(daily_view)
        )

    def split_day(self, materialized_view: str) -> sql.Composable:
        """First day read live: day(watermark), or -infinity when the view can't be used."""
        if materialized_view not in self.available_views:
            return sql.SQL("'-infinity'::date")
        return sql.SQL("(select split_day from watermarks where view_name = {})").format(
            sql.Literal(materialized_view)
        )

    def has_rollups(self, block: DailyBlock) -> bool:
        """Whether the block's range is read from its month and year rollups (they exist
        beside its usable materialized view: the incremental strategy keeps them)."""
        return {block.materialized_view, block.rollups} <= self.available_views

    def live_arm(self, block: DailyBlock | DistinctDays, selected: sql.Composable) -> sql.Composed:
        """The block's live rows: days from the split on, and (with capture) the days before
        it recorded as changed, in one arm. The two day sets are disjoint (changed days lie
        before the split), so one scan of the daily view (a BitmapOr of two index probes)
        returns what two arms did, with one copy of the view's plan to start on every
        execution instead of two (315 -> 282 plan nodes at 10x, docs/BENCHMARKS.md)."""
        days = sql.SQL(
            "business_day between greatest(%(date_from)s::date, {split}) and %(date_to)s::date"
        ).format(split=self.split_day(block.materialized_view))
        if self.changes and block.materialized_view in self.available_views:
            days = sql.SQL("({days} or business_day = any({changed}))").format(
                days=days, changed=self.changed(block.view)
            )
        return sql.SQL(
            "select {cols} from {view} where organization_id = %(organization_id)s and {days}"
        ).format(cols=selected, view=self.relation(block.view), days=days)

    def daily_rows(self, block: DailyBlock) -> sql.Composed:
        """The block's daily rows in the request's range: materialized, then live days."""
        selected = sql.SQL(", ").join(sql.Identifier(c) for c in ("business_day", *block.columns))
        arms = [self.live_arm(block, selected)]
        if block.materialized_view in self.available_views:
            materialized = sql.SQL(
                "select {cols} from {mv} where organization_id = %(organization_id)s"
                " and business_day between %(date_from)s::date and %(date_to)s::date"
                " and business_day < {split}{unchanged}"
            ).format(
                cols=selected,
                mv=self.relation(block.materialized_view),
                split=self.split_day(block.materialized_view),
                unchanged=sql.SQL(" and business_day <> all({})").format(self.changed(block.view))
                if self.changes
                else sql.SQL(""),
            )
            arms.insert(0, materialized)
        return sql.SQL(" union all ").join(arms)

    def rollup_rows(self, block: DailyBlock) -> sql.Composed:
        """The block's rows for a range total, at most ~92 per block whatever its length:
        ``rollup_sql.materialized_arms`` before the split, then the live arms."""
        selected = sql.SQL(", ").join(map(sql.Identifier, block.columns))
        arms = [
            *rollup_sql.materialized_arms(self, block, changed=self.changes),
            self.live_arm(block, selected),
        ]
        return sql.SQL(" union all ").join(arms)

    def block_totals(self, block: DailyBlock) -> sql.Composed:
        """The block's sums over the range, as a CTE named after its daily view (a §4 block
        may have several: jobs has daily_jobs and daily_labor)."""
        sums = sql.SQL(", ").join(
            sql.SQL("coalesce(sum({c}), 0) as {c}").format(c=sql.Identifier(c))
            for c in block.columns
        )
        rows = self.rollup_rows(block) if self.has_rollups(block) else self.daily_rows(block)
        return sql.SQL("{name} as (select {sums} from ({rows}) as days)").format(
            name=sql.Identifier(block.view), sums=sums, rows=rows
        )

    def unique_customers(self) -> sql.Composed:
        return customers_sql.unique_customers(self)

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
            usable = sql.SQL("{split} > '-infinity'::date{unchanged}").format(
                split=self.split_day(state.materialized_view),
                unchanged=sql.SQL(" and not ({})").format(self.state_changed())
                if self.changes
                else sql.SQL(""),
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

    def state_changed(self) -> sql.Composable:
        """Whether the organization's current state changed since the snapshot's refresh
        (its change rows carry business day -infinity)."""
        if not self.changes:
            return sql.SQL("false")
        return sql.SQL(
            "exists (select from {} where organization_id = %(organization_id)s"
            " and daily_view = {} and business_day = '-infinity'::date)"
        ).format(self.relation(CHANGES_TABLE), sql.Literal(CURRENT_STATE.view))

    def metrics(self) -> sql.Composed:
        """One statement, one row: every §3 key (breakdowns as columns) and the watermarks."""
        ctes = [
            *self.ctes(),
            *(self.block_totals(block) for block in DAILY_BLOCKS),
            self.unique_customers(),
            self.current_state(),
        ]
        sources = (*(block.view for block in DAILY_BLOCKS), "customers", CURRENT_STATE.name)
        return sql.SQL(
            "with {ctes} select {final}, {freshness}, {changed} as current_state_changed"
            " from {sources}"
        ).format(
            ctes=sql.SQL(",\n").join(ctes),
            final=sql.SQL(_FINAL_METRICS),
            freshness=self.freshness_columns(),
            changed=self.state_changed(),
            sources=sql.SQL(", ").join(map(sql.Identifier, sources)),
        )
