"""``unique_customers`` of a range, exactly: distinct customers over every arm, never a sum
of daily counts.

The materialized arm is ``mv_order_customer_days``: per (organization, customer) the
``datemultirange`` of its order days, tested with ``&&`` against the days before the split
(minus the days recorded as changed, which are read live). It costs one index range scan
over the organization's customers whatever the range's length (measured against sorted day
arrays, per-day rows and previous-order-day rows: ../shared/PERF-NOTES.md). When that
range is empty (a range of today only, the commonest dashboard read), a one-time filter
skips the scan entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from dashquery.catalog import CUSTOMER_DAYS

if TYPE_CHECKING:
    from dashquery.read.statement import HybridStatements


def _before_split(hybrid: HybridStatements) -> sql.Composed:
    """[date_from, min(date_to + 1, split)) as a datemultirange (empty when the split is at
    or before date_from), minus the changed days."""
    days = CUSTOMER_DAYS
    span = sql.SQL(
        "datemultirange(daterange(%(date_from)s::date,"
        " greatest(%(date_from)s::date, least(%(date_to)s::date + 1, {split})), '[)'))"
    ).format(split=hybrid.split_day(days.materialized_view))
    if not hybrid.changes:
        return span
    return sql.SQL(
        "{} - coalesce((select range_agg(daterange(business_day, business_day, '[]'))"
        " from changed_days where daily_view = {}), '{{}}'::datemultirange)"
    ).format(span, sql.Literal(days.view))


def unique_customers(hybrid: HybridStatements) -> sql.Composed:
    """The ``customers`` CTE: one row, ``unique_customers``.

    ``count(distinct)`` over ``union all`` deduplicates whatever the number of arms: with
    the materialized view unusable there is only the live arm, which has one row per
    (customer, day), and a plain ``union`` of one arm deduplicates nothing.
    """
    days = CUSTOMER_DAYS
    distinct = sql.Identifier(days.distinct)
    # the live days, as every block's: from the split on, and the changed days before it
    arms = hybrid.live_arms(days, distinct)
    if days.materialized_view in hybrid.available_views:
        # Both scalar subqueries are initplans, evaluated once; the first references no
        # column of the scan, so it becomes a one-time filter in front of it.
        span = _before_split(hybrid)
        arms.insert(
            0,
            sql.SQL(
                "select {distinct} from {mv} where organization_id = %(organization_id)s"
                " and (select not isempty({span})) and order_days && (select {span})"
            ).format(
                distinct=distinct,
                mv=hybrid.relation(days.materialized_view),
                span=span,
            ),
        )
    return sql.SQL(
        "customers as (select count(distinct {distinct}) as unique_customers"
        " from ({arms}) as range_customers)"
    ).format(distinct=distinct, arms=sql.SQL(" union all ").join(arms))
