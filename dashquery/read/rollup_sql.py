"""The materialized half of a daily block's range total from month and year rollups
(issue 14 item 1: the cost of a range does not grow with its length).

dbt keeps, beside each daily block's materialized table, ``<table>__rollups``: the sums of
its day rows per (organization, month) and (organization, year), written in the same
transaction as the day rows (macros/rollups.sql). The days before the split,
``[date_from, min(date_to + 1, split))``, are cut into leading days up to the first whole
month, whole months up to the first whole year, whole years, then months and days again
(``spans``): at most 2 x 30 day rows, 2 x 11 month rows and the years, each piece one index
range scan on its table's unique key.

Days recorded as changed since the refresh are inside some rollup with their stored value:
that value is subtracted (the stored day row, negated) and the live day added (the live
arms), which is exact, since every column is an integer or numeric sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from dashquery.catalog import ROLLUP_GRAIN, ROLLUP_START, DailyBlock

if TYPE_CHECKING:
    from dashquery.read.statement import HybridStatements


def spans_cte() -> sql.Composed:
    """Per materialized view, the bounds of its range's pieces.

    ``a``..``b`` is the range before the split (empty when ``b <= a``); days are
    ``[a, p1)`` and ``[p2, b)``, months ``[p1, q1)`` and ``[q2, p2)``, years ``[q1, q2)``.
    With no whole month inside, everything is days (``p1 = p2 = q1 = q2 = b``); with whole
    months but no whole year, the months are ``[p1, p2)`` (``q1 = q2 = p2``).
    """
    return sql.SQL(
        """spans as (
    select view_name, a, b,
        case when month_in < month_out then month_in else b end as p1,
        case when month_in < month_out then month_out else b end as p2,
        case when year_in < year_out then year_in
            when month_in < month_out then month_out else b end as q1,
        case when year_in < year_out then year_out
            when month_in < month_out then month_out else b end as q2
    from (
        select view_name, a, b,
            (date_trunc('month', (a - 1)::timestamp) + interval '1 month')::date as month_in,
            date_trunc('month', b::timestamp)::date as month_out,
            (date_trunc('year', (a - 1)::timestamp) + interval '1 year')::date as year_in,
            date_trunc('year', b::timestamp)::date as year_out
        from (
            select view_name, %(date_from)s::date as a,
                greatest(%(date_from)s::date, least(%(date_to)s::date + 1, split_day)) as b
            from watermarks
        ) as bounds
    ) as edges
)"""
    )


def materialized_arms(
    hybrid: HybridStatements, block: DailyBlock, *, changed: bool
) -> list[sql.Composed]:
    """Selects of the block's columns whose rows sum to its days before the split.

    The five pieces are one LATERAL union over the block's row of ``spans``, whose bounds
    reach each index range scan as parameters of the nested loop: written as a scalar
    subquery per bound instead, each bound was an initplan of its own (ten per block, each
    a CTE scan): the metrics statement had 335 plan nodes (300 now) and its 730-day
    execution took ~3% longer (10x, EXPLAIN ANALYZE with TIMING OFF, medians of 60).
    """
    view = sql.Literal(block.materialized_view)
    columns = sql.SQL(", ").join(map(sql.Identifier, block.columns))
    days = hybrid.relation(block.materialized_view)
    rollups = hybrid.relation(block.rollups)
    pieces = [
        sql.SQL(
            "select {cols} from {days} where organization_id = %(organization_id)s"
            " and business_day >= dq_span.{lo} and business_day < dq_span.{hi}"
        ).format(cols=columns, days=days, lo=sql.Identifier(lo), hi=sql.Identifier(hi))
        for lo, hi in (("a", "p1"), ("p2", "b"))
    ]
    pieces.extend(
        sql.SQL(
            "select {cols} from {rollups} where organization_id = %(organization_id)s"
            " and {grain} = {name} and {start} >= dq_span.{lo} and {start} < dq_span.{hi}"
        ).format(
            cols=columns,
            rollups=rollups,
            grain=sql.Identifier(ROLLUP_GRAIN),
            name=sql.Literal(grain),
            start=sql.Identifier(ROLLUP_START),
            lo=sql.Identifier(lo),
            hi=sql.Identifier(hi),
        )
        for grain, lo, hi in (("month", "p1", "q1"), ("month", "q2", "p2"), ("year", "q1", "q2"))
    )
    arms = [
        sql.SQL(
            "select dq_piece.* from spans as dq_span cross join lateral ({pieces}) as dq_piece"
            " where dq_span.view_name = {view}"
        ).format(pieces=sql.SQL(" union all ").join(pieces), view=view)
    ]
    if changed:
        # the stored values of the changed days, taken back out (the live arms add them anew)
        negated = sql.SQL(", ").join(
            sql.SQL("-{c}").format(c=sql.Identifier(c)) for c in block.columns
        )
        arms.append(
            sql.SQL(
                "select {cols} from {days} where organization_id = %(organization_id)s"
                " and business_day = any({changed})"
            ).format(cols=negated, days=days, changed=hybrid.changed(block.view))
        )
    return arms
