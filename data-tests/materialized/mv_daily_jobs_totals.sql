-- mv_daily_jobs summed over all days equals the jobs aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(jobs_scheduled) as jobs_scheduled,
        sum(jobs_status_completed) as scheduled_and_completed,
        sum(estimated_hours) as estimated_hours,
        sum(jobs_completed) as jobs_completed
    from {{ ref('mv_daily_jobs') }}
    group by 1
),

direct as (
    select
        organization_id,
        count(*) as jobs_scheduled,
        count(*) filter (where status = 'completed') as scheduled_and_completed,
        sum(estimated_hours) as estimated_hours,
        count(*) filter (where status = 'completed' and completed_at is not null) as jobs_completed
    from {{ source('application', 'jobs') }}
    where deleted_at is null
    group by 1
)

{{ symmetric_difference('materialized', 'direct') }}
