-- mv_daily_jobs summed over all days equals jobs and time entries aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(jobs_scheduled) as jobs_scheduled,
        sum(jobs_status_completed) as scheduled_and_completed,
        sum(estimated_hours) as estimated_hours,
        sum(jobs_completed) as jobs_completed,
        sum(labor_hours) as labor_hours
    from {{ ref('mv_daily_jobs') }}
    group by 1
),

jobs as (
    select
        organization_id,
        count(*) as jobs_scheduled,
        count(*) filter (where status = 'completed') as scheduled_and_completed,
        sum(estimated_hours) as estimated_hours,
        count(*) filter (where status = 'completed' and completed_at is not null) as jobs_completed
    from {{ source('application', 'jobs') }}
    where deleted_at is null
    group by 1
),

labor as (
    select
        entries.organization_id,
        sum(entries.hours) as labor_hours
    from {{ source('application', 'job_time_entries') }} as entries
    inner join {{ source('application', 'jobs') }} as jobs
        on entries.job_id = jobs.id and jobs.deleted_at is null
    group by 1
),

direct as (
    select
        jobs.*,
        coalesce(labor.labor_hours, 0) as labor_hours
    from jobs
    left join labor on jobs.organization_id = labor.organization_id
)

{{ symmetric_difference('materialized', 'direct') }}
