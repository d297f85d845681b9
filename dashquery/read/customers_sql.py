"""``unique_customers`` of a range, exactly: distinct customers over every arm, never a sum
of daily counts.

The materialized part is ``mv_order_customer_days``: per (organization, customer) the
``datemultirange`` of its order days before the split. Two exact ways to count the customers
with a day in ``[a, b)`` (``a`` = date_from, ``b`` = min(date_to + 1, split)):

- **spans** (dbt keeps ``__ends`` and ``__gaps`` beside the relation, macros/spans.sql):
  customers whose first day is before ``b``, minus those whose last day is before ``a``,
  minus those with a gap around the whole range. The first two are prefix sums of per-period
  counts (year, month and day rows: ~50 at most); the gaps around a range are found by their
  end (``before_day >= b``: none for a range ending at the split, the commonest read) or, for
  a range ending over a month earlier, by their length (only gaps longer than the range can
  contain it).
  Its cost does not grow with the customer count. The live customers (days from the split
  on) are added when their stored days miss ``[a, b)``: one unique-key probe each.
- **every customer tested**: each customer's multirange ``&&`` the range, ``count(distinct)``
  over it and the live arms. One row per customer of the organization (~200k for a large
  tenant). Used when the spans are missing (the concurrent strategy, an older deployment)
  and when a day before the split is recorded as changed: the stored multiranges are then
  wrong on that day, and only the per-customer test can take it out.

Both are in the statement; which runs is decided in it, in the same snapshot (a CASE over
initplans: PostgreSQL evaluates an initplan when it is first referenced, so the branch not
taken costs nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from dashquery.catalog import (
    CUSTOMER_DAYS,
    ROLLUP_GRAIN,
    ROLLUP_START,
    SPANS_AFTER,
    SPANS_BEFORE,
    SPANS_FIRST,
    SPANS_LAST,
    SPANS_LENGTH,
)

if TYPE_CHECKING:
    from dashquery.read.statement import HybridStatements

# The distinct customers of the live days (from the split on, and the changed days before
# it), a CTE: each way of counting reads it.
_LIVE = "customers_live"


def _end(start: sql.Composable, split: sql.Composable) -> sql.Composed:
    """b: the end of [start, b), the days of the range before the split (empty when b is
    start)."""
    return sql.SQL("greatest({start}, least(%(date_to)s::date + 1, {split}))").format(
        start=start, split=split
    )


def _bounds(hybrid: HybridStatements) -> sql.Composed:
    """One row: a (date_from), b and the split, for every piece of the spans count (the
    split's initplan evaluated once)."""
    return sql.SQL(
        "select a, {b} as b, split from (select %(date_from)s::date as a, {split} as split)"
        " as edges"
    ).format(
        b=_end(sql.SQL("a"), sql.SQL("split")),
        split=hybrid.split_day(CUSTOMER_DAYS.materialized_view),
    )


def _before_split(hybrid: HybridStatements) -> sql.Composed:
    """[date_from, min(date_to + 1, split)) as a datemultirange (empty when the split is at
    or before date_from), minus the changed days."""
    days = CUSTOMER_DAYS
    span = sql.SQL("datemultirange(daterange(%(date_from)s::date, {end}, '[)'))").format(
        end=_end(sql.SQL("%(date_from)s::date"), hybrid.split_day(days.materialized_view))
    )
    if not hybrid.changes:
        return span
    return sql.SQL(
        "{} - coalesce((select range_agg(daterange(business_day, business_day, '[]'))"
        " from changed_days where daily_view = {}), '{{}}'::datemultirange)"
    ).format(span, sql.Literal(days.view))


def _ends_before(hybrid: HybridStatements, column: str, day: str) -> sql.Composed:
    """Sum of ``column`` over every period before ``day`` (a column of ``bounds``): whole
    years, then whole months of its year, then days of its month; three key range scans."""
    pieces = (
        ("year", "'-infinity'::date", "date_trunc('year', {d}::timestamp)::date"),
        (
            "month",
            "date_trunc('year', {d}::timestamp)::date",
            "date_trunc('month', {d}::timestamp)::date",
        ),
        ("day", "date_trunc('month', {d}::timestamp)::date", "{d}"),
    )
    arms = [
        sql.SQL(
            "select {column} from {ends} where organization_id = %(organization_id)s"
            " and {grain} = {name} and {start} >= {lo} and {start} < {hi}"
        ).format(
            column=sql.Identifier(column),
            ends=hybrid.relation(CUSTOMER_DAYS.ends),
            grain=sql.Identifier(ROLLUP_GRAIN),
            name=sql.Literal(name),
            start=sql.Identifier(ROLLUP_START),
            lo=sql.SQL(lo.format(d="bounds." + day)),
            hi=sql.SQL(hi.format(d="bounds." + day)),
        )
        for name, lo, hi in pieces
    ]
    return sql.SQL("(select coalesce(sum({c}), 0) from ({arms}) as periods)").format(
        c=sql.Identifier(column), arms=sql.SQL(" union all ").join(arms)
    )


def _gaps_around(hybrid: HybridStatements) -> sql.Composed:
    """Customers with a gap around all of [a, b): after_day < a and before_day >= b. Found by
    before_day when b is at most a month before the split, and no further from it than the
    range is long (the gaps ending from b on are then few: none when b is the split), else
    by length (before_day - after_day > b - a: gaps longer than a long range are rare; a
    year-long range ending a year ago would otherwise read a year of gaps by their end). The
    second arm states its end as after_day + gap_days, the same day, so that only the length
    is an index bound and the planner cannot take the other index for it."""
    gaps = hybrid.relation(CUSTOMER_DAYS.gaps)
    after, before, length = map(sql.Identifier, (SPANS_AFTER, SPANS_BEFORE, SPANS_LENGTH))
    by_end = sql.SQL(
        "(select count(*) from {gaps} where organization_id = %(organization_id)s"
        " and {before} >= bounds.b and {after} < bounds.a)"
    ).format(gaps=gaps, before=before, after=after)
    by_length = sql.SQL(
        "(select count(*) from {gaps} where organization_id = %(organization_id)s"
        " and {length} > bounds.b - bounds.a and {after} < bounds.a"
        " and {after} + {length} >= bounds.b)"
    ).format(gaps=gaps, length=length, after=after)
    return sql.SQL(
        "case when bounds.split - bounds.b <= least(bounds.b - bounds.a, 31)"
        " then {by_end} else {by_length} end"
    ).format(by_end=by_end, by_length=by_length)


def _from_spans(hybrid: HybridStatements) -> sql.Composed:
    """The spans count of [a, b) plus the live customers whose stored days miss it."""
    days = CUSTOMER_DAYS
    distinct = sql.Identifier(days.distinct)
    stored = sql.SQL(
        "case when bounds.b <= bounds.a then 0 else {firsts} - {lasts} - {gaps} end"
    ).format(
        firsts=_ends_before(hybrid, SPANS_FIRST, "b"),
        lasts=_ends_before(hybrid, SPANS_LAST, "a"),
        gaps=_gaps_around(hybrid),
    )
    # With no stored day in the range every live customer is new: no probes. Otherwise one
    # unique-key probe per live customer: a scalar subquery, which PostgreSQL runs per row
    # (a NOT EXISTS would be planned as an anti-join, and with the generic plan's estimate
    # of the live customers, a hash of all the organization's customers: ~1 ms at 10x).
    new_live = sql.SQL(
        "case when bounds.b <= bounds.a then (select count(*) from {live} as live)"
        " else (select count(*) from {live} as live where not coalesce(("
        "select stored.{days_column} && daterange(bounds.a, bounds.b, '[)') from {mv} as stored"
        " where stored.organization_id = %(organization_id)s"
        " and stored.{distinct} = live.{distinct}), false)) end"
    ).format(
        distinct=distinct,
        days_column=sql.Identifier(days.days),
        live=sql.Identifier(_LIVE),
        mv=hybrid.relation(days.materialized_view),
    )
    return sql.SQL("(select {stored} + {new_live} from ({bounds}) as bounds)").format(
        stored=stored,
        new_live=new_live,
        bounds=_bounds(hybrid),
    )


def _every_customer(hybrid: HybridStatements) -> sql.Composed:
    """``count(distinct)`` over the customers whose stored days meet the range (minus the
    changed days) and the live customers: one who is in both counts once."""
    days = CUSTOMER_DAYS
    distinct = sql.Identifier(days.distinct)
    arms = [sql.SQL("select {} from {}").format(distinct, sql.Identifier(_LIVE))]
    if days.materialized_view in hybrid.available_views:
        # Both scalar subqueries are initplans, evaluated once; the first references no
        # column of the scan, so it becomes a one-time filter in front of it.
        span = _before_split(hybrid)
        arms.insert(
            0,
            sql.SQL(
                "select {distinct} from {mv} where organization_id = %(organization_id)s"
                " and (select not isempty({span})) and {days_column} && (select {span})"
            ).format(
                distinct=distinct,
                days_column=sql.Identifier(days.days),
                mv=hybrid.relation(days.materialized_view),
                span=span,
            ),
        )
    return sql.SQL("(select count(distinct {distinct}) from ({arms}) as range_customers)").format(
        distinct=distinct, arms=sql.SQL(" union all ").join(arms)
    )


def unique_customers(hybrid: HybridStatements) -> sql.Composed:
    """The ``customers_live`` and ``customers`` CTEs; ``customers`` has one row,
    ``unique_customers``."""
    days = CUSTOMER_DAYS
    distinct = sql.Identifier(days.distinct)
    # the live days, as every block's: from the split on, and the changed days before it
    live = sql.SQL("{name} as (select distinct {distinct} from ({arm}) as live_days)").format(
        name=sql.Identifier(_LIVE),
        distinct=distinct,
        arm=hybrid.live_arm(days, distinct),
    )
    every = _every_customer(hybrid)
    if not {days.materialized_view, days.ends, days.gaps} <= hybrid.available_views:
        count = every
    else:
        unchanged = (
            sql.SQL("not exists (select from changed_days where daily_view = {})").format(
                sql.Literal(days.view)
            )
            if hybrid.changes
            else sql.SQL("true")
        )
        count = sql.SQL("case when {} then {} else {} end").format(
            unchanged, _from_spans(hybrid), every
        )
    return sql.SQL("{live},\ncustomers as (select {count} as unique_customers)").format(
        live=live, count=count
    )
