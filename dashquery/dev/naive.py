"""The reference implementation: contract §3 written straight as one SQL statement.

It reads only the application tables in ``settings.source_schema`` (never a materialized view
or other dbt object): the oracle the fast path is tested against and the benchmark baseline.
Read it next to ``METRICS.md`` §3: one CTE per contract table, each filtered by organization,
``deleted_at is null`` and ``day(ts) = (ts at time zone <timezone>)::date`` in the inclusive
range. Each CTE aggregates without ``group by``, so yields one row; the final ``select`` cross
joins them. One statement is one snapshot, so the numbers agree with each other.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dashquery.catalog import CLAIM_STATUSES, CLAIM_TYPES, JOB_STATUSES, OPPORTUNITY_STAGES
from dashquery.config import Settings

# {src} is the source schema (an Identifier); values are bound parameters. Integral cent sums
# are cast back to bigint (sum(bigint) is numeric in PostgreSQL); the other sums stay numeric.
_QUERY = r"""
with
orders as (
    select
        count(*) as orders_count,
        count(*) filter (where status = 'delivered') as delivered_orders,
        count(*) filter (
            where status in ('draft', 'confirmed', 'picking', 'picked', 'shipped')
        ) as pending_orders,
        count(*) filter (where status = 'cancelled') as cancelled_orders,
        coalesce(sum(total_cents) filter (where status <> 'cancelled'), 0)::bigint
            as total_order_value_cents,
        coalesce(sum(total_cents) filter (where status = 'delivered'), 0)::bigint
            as revenue_cents,
        (sum(total_cents) filter (where status <> 'cancelled'))::numeric
            / nullif(count(*) filter (where status <> 'cancelled'), 0)
            as average_order_value_cents,
        count(distinct customer_id) as unique_customers
    from {src}.orders
    where organization_id = %(org)s and deleted_at is null
        and (created_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
product_capacity as (
    -- capacity(product): a JSON number is its value; a string is its number when, stripped of
    -- surrounding spaces (U+0020), it is [sign] digits [. digits] or [sign] . digits, then an
    -- optional exponent of 1 to 4 ASCII digits, and the string has at most 1000 characters;
    -- a value of absolute value 10^100 or more, and anything else, is 0. Nested CASEs: a cast
    -- is only reached once its input passed, so no stored value can make this raise.
    select
        id,
        case jsonb_typeof(c)
            when 'number' then
                case when abs(c::numeric) >= 1e100 then 0 else c::numeric end
            when 'string' then
                case
                    when length(s) > 1000 then 0
                    when btrim(s, ' ')
                        !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{{1,4}})?$' then 0
                    when abs(btrim(s, ' ')::numeric) >= 1e100 then 0
                    else btrim(s, ' ')::numeric
                end
            else 0
        end as capacity
    from (
        select id, specifications -> 'capacity_kwh' as c, specifications ->> 'capacity_kwh' as s
        from {src}.products
    ) as spec
),
energy as (
    -- inner joins: a job without an order, or whose order is deleted, adds 0
    select coalesce(sum(oi.quantity * pc.capacity), 0) as kwh_deployed
    from {src}.jobs as j
    join {src}.orders as o on o.id = j.order_id and o.deleted_at is null
    join {src}.order_items as oi on oi.order_id = o.id
    join product_capacity as pc on pc.id = oi.product_id
    where j.organization_id = %(org)s and j.deleted_at is null and j.status = 'completed'
        and (j.completed_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
opportunities_created as (
    select
        count(*) as new_opportunities,
        count(*) filter (where stage = 'new') as stage_new,
        count(*) filter (where stage = 'qualified') as stage_qualified,
        count(*) filter (where stage = 'proposal') as stage_proposal,
        count(*) filter (where stage = 'negotiation') as stage_negotiation,
        count(*) filter (where stage = 'won') as stage_won,
        count(*) filter (where stage = 'lost') as stage_lost,
        coalesce(sum(value_cents), 0)::bigint as pipeline_value_cents,
        coalesce(sum(value_cents::numeric * probability) / 100, 0) as weighted_pipeline_cents
    from {src}.opportunities
    where organization_id = %(org)s and deleted_at is null
        and (created_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
opportunities_closed as (
    select
        count(*) filter (where stage = 'won') as won_opportunities,
        count(*) filter (where stage = 'lost') as lost_opportunities,
        -- every row here is won or lost, so count(*) = won + lost
        (count(*) filter (where stage = 'won'))::numeric / nullif(count(*), 0)
            as quote_win_rate,
        (sum(value_cents) filter (where stage = 'won'))::numeric
            / nullif(count(*) filter (where stage = 'won'), 0) as average_won_deal_cents
    from {src}.opportunities
    where organization_id = %(org)s and deleted_at is null and stage in ('won', 'lost')
        and (closed_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
jobs_scheduled as (
    select
        count(*) as jobs_scheduled,
        count(*) filter (where status = 'scheduled') as job_status_scheduled,
        count(*) filter (where status = 'in_progress') as job_status_in_progress,
        count(*) filter (where status = 'completed') as job_status_completed,
        count(*) filter (where status = 'cancelled') as job_status_cancelled,
        coalesce(sum(estimated_hours), 0) as estimated_hours
    from {src}.jobs
    where organization_id = %(org)s and deleted_at is null
        and (scheduled_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
jobs_completed as (
    select count(*) as jobs_completed
    from {src}.jobs
    where organization_id = %(org)s and deleted_at is null and status = 'completed'
        and (completed_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
job_time_entries as (
    select coalesce(sum(t.hours), 0) as labor_hours
    from {src}.job_time_entries as t
    join {src}.jobs as j on j.id = t.job_id and j.deleted_at is null
    where t.organization_id = %(org)s
        and (t.worked_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
warranty_claims as (
    select
        count(*) as warranty_claims,
        count(*) filter (where status = 'pending') as claim_status_pending,
        count(*) filter (where status = 'approved') as claim_status_approved,
        count(*) filter (where status = 'rejected') as claim_status_rejected,
        count(*) filter (where status = 'resolved') as claim_status_resolved,
        count(*) filter (where claim_type = 'defect') as claim_type_defect,
        count(*) filter (where claim_type = 'damage') as claim_type_damage,
        count(*) filter (where claim_type = 'performance') as claim_type_performance,
        -- exactly the contract's mean of (resolved_at - created_at) in hours over the
        -- resolved ones: total seconds / 3600 / their count
        sum(extract(epoch from resolved_at - created_at)) filter (where resolved_at is not null)
            / 3600 / nullif(count(*) filter (where resolved_at is not null), 0)
            as average_resolution_hours
    from {src}.warranty_claims
    where organization_id = %(org)s and deleted_at is null
        and (created_at at time zone %(tz)s)::date between %(date_from)s and %(date_to)s
),
current_state as (
    -- a snapshot of now: no date filter
    select
        (select count(*) from {src}.jobs
            where organization_id = %(org)s and deleted_at is null
                and status in ('scheduled', 'in_progress')) as active_installations,
        (select count(*) from {src}.warranty_claims
            where organization_id = %(org)s and deleted_at is null
                and status in ('pending', 'approved')) as open_warranty_claims,
        (select coalesce(sum(value_cents::numeric * probability) / 100, 0)
            from {src}.opportunities
            where organization_id = %(org)s and deleted_at is null
                and stage not in ('won', 'lost')) as current_pipeline_cents,
        (select count(*) from {src}.customers
            where organization_id = %(org)s and deleted_at is null
                and status = 'active') as active_customers
)
select *
from orders, energy, opportunities_created, opportunities_closed, jobs_scheduled,
    jobs_completed, job_time_entries, warranty_claims, current_state
"""

# Keys in contract order; the breakdown columns are folded into the dicts after these.
_KEYS = (
    "orders_count", "delivered_orders", "pending_orders", "cancelled_orders",
    "total_order_value_cents", "revenue_cents", "average_order_value_cents",
    "unique_customers", "kwh_deployed", "new_opportunities", "opportunities_by_stage",
    "pipeline_value_cents", "weighted_pipeline_cents", "won_opportunities",
    "lost_opportunities", "quote_win_rate", "average_won_deal_cents", "jobs_scheduled",
    "jobs_by_status", "estimated_hours", "jobs_completed", "labor_hours", "warranty_claims",
    "claims_by_status", "claims_by_type", "average_resolution_hours", "active_installations",
    "open_warranty_claims", "current_pipeline_cents", "active_customers",
)  # fmt: skip


def naive_metrics(
    conn: psycopg.Connection[Any],
    settings: Settings,
    organization_id: UUID,
    date_from: date,
    date_to: date,
) -> dict[str, Any]:
    """Every contract §3 key for one organization and inclusive date range, computed live.

    Runs in its own transaction (a savepoint if one is open). Counts and cent sums are
    ``int``; hour, kWh and weighted-cent sums ``Decimal`` exactly as PostgreSQL's numeric
    computes them; averages and ratios ``Decimal``, or ``None`` when the denominator is 0.
    """
    query = sql.SQL(_QUERY).format(src=sql.Identifier(settings.source_schema))
    params: dict[str, Any] = {"org": organization_id, "tz": settings.timezone}
    params |= {"date_from": date_from, "date_to": date_to}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # JIT compilation costs 80-470 ms on this query at benchmark volume and buys nothing
        # for a one-shot aggregate; SET LOCAL keeps the change inside this transaction.
        cur.execute("set local jit = off", prepare=False)
        # Never prepared: psycopg prepares a query on its sixth execution, and PostgreSQL then
        # may switch to a generic plan, in which the zone is a parameter, no expression index
        # on day(ts) matches, and every range scans whole tables (a 1-day read of a 100x
        # tenant took 9 s instead of 0.16 s once longer ranges had set the plan cache's
        # average). The reference query is planned for its values every time.
        cur.execute(query, params, prepare=False)
        row = cur.fetchone()
    assert row is not None  # aggregates without group by always return one row
    row["opportunities_by_stage"] = {s: row.pop(f"stage_{s}") for s in OPPORTUNITY_STAGES}
    row["jobs_by_status"] = {s: row.pop(f"job_status_{s}") for s in JOB_STATUSES}
    row["claims_by_status"] = {s: row.pop(f"claim_status_{s}") for s in CLAIM_STATUSES}
    row["claims_by_type"] = {t: row.pop(f"claim_type_{t}") for t in CLAIM_TYPES}
    return {key: row[key] for key in _KEYS}
