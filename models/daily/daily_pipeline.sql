-- Two facts per business day: opportunities created that day (by their current stage) and
-- opportunities won or lost that day. Both are additive over days, so a range sums rows.
{%- set stages = metric_values('opportunity_stages') %}

-- NOT MATERIALIZED: the import CTE is used by several facts, and only an inlined CTE lets
-- the read path's organization and day predicates reach the source indexes.
with

opportunities as not materialized (
    select * from {{ ref('stg_opportunities') }}
),

created as (
    select
        organization_id,
        {{ business_day('created_at') }} as business_day,
        count(*) as new_opportunities,
        {{ count_by('stage', stages, 'opportunities_stage') }},
        sum(value_cents)::bigint as pipeline_value_cents,
        sum(value_cents::numeric * probability) / 100 as weighted_pipeline_cents,
        0::bigint as won_opportunities,
        0::bigint as lost_opportunities,
        0::bigint as won_value_cents
    from opportunities
    group by 1, 2
),

closed as (
    select
        organization_id,
        {{ business_day('closed_at') }} as business_day,
        0::bigint as new_opportunities,
        {%- for stage in stages %}
            0::bigint as opportunities_stage_{{ stage }},
        {%- endfor %}
        0::bigint as pipeline_value_cents,
        0::numeric as weighted_pipeline_cents,
        count(*) filter (where stage = 'won') as won_opportunities,
        count(*) filter (where stage = 'lost') as lost_opportunities,
        coalesce(sum(value_cents) filter (where stage = 'won'), 0)::bigint as won_value_cents
    from opportunities
    where stage in ('won', 'lost') and closed_at is not null
    group by 1, 2
),

facts as (
    select * from created
    union all
    select * from closed
),

final as (
    select
        organization_id,
        business_day,
        sum(new_opportunities)::bigint as new_opportunities,
        {%- for stage in stages %}
            sum(opportunities_stage_{{ stage }})::bigint as opportunities_stage_{{ stage }},
        {%- endfor %}
        sum(pipeline_value_cents)::bigint as pipeline_value_cents,
        sum(weighted_pipeline_cents) as weighted_pipeline_cents,
        sum(won_opportunities)::bigint as won_opportunities,
        sum(lost_opportunities)::bigint as lost_opportunities,
        sum(won_value_cents)::bigint as won_value_cents
    from facts
    group by 1, 2
)

select * from final
