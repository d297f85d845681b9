-- mv_daily_pipeline summed over all days equals the opportunities table aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(new_opportunities) as new_opportunities,
        sum(opportunities_stage_won) as created_and_won,
        sum(pipeline_value_cents) as pipeline_value_cents,
        sum(weighted_pipeline_cents) as weighted_pipeline_cents,
        sum(won_opportunities) as won_opportunities,
        sum(lost_opportunities) as lost_opportunities,
        sum(won_value_cents) as won_value_cents
    from {{ ref('mv_daily_pipeline') }}
    group by 1
),

direct as (
    select
        organization_id,
        count(*) as new_opportunities,
        count(*) filter (where stage = 'won') as created_and_won,
        sum(value_cents) as pipeline_value_cents,
        sum(value_cents::numeric * probability) / 100 as weighted_pipeline_cents,
        count(*) filter (where stage = 'won' and closed_at is not null) as won_opportunities,
        count(*) filter (where stage = 'lost' and closed_at is not null) as lost_opportunities,
        coalesce(sum(value_cents) filter (where stage = 'won' and closed_at is not null), 0)
            as won_value_cents
    from {{ source('application', 'opportunities') }}
    where deleted_at is null
    group by 1
)

{{ symmetric_difference('materialized', 'direct') }}
