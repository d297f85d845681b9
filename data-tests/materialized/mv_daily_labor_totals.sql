-- mv_daily_labor summed over all days equals the hours of live jobs' time entries
-- aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(labor_hours) as labor_hours
    from {{ ref('mv_daily_labor') }}
    group by 1
),

direct as (
    select
        entries.organization_id,
        sum(entries.hours) as labor_hours
    from {{ source('application', 'job_time_entries') }} as entries
    inner join {{ source('application', 'jobs') }} as jobs
        on entries.job_id = jobs.id and jobs.deleted_at is null
    group by 1
)

{{ symmetric_difference('materialized', 'direct') }}
