-- Two facts per business day: jobs scheduled that day (by current status, with their
-- estimated hours) and jobs completed that day. Hours worked are daily_labor's (their day
-- is the time entry's, and no job edit changes them).
-- Their indexes are declared in models/indexes/source_indexes.sql.
{%- set statuses = metric_values('job_statuses') %}

-- NOT MATERIALIZED: the import CTE is used by several facts, and only an inlined CTE lets
-- the read path's organization and day predicates reach the source indexes.
with

jobs as not materialized (
    select * from {{ ref('stg_jobs') }}
),

scheduled as (
    select
        organization_id,
        {{ business_day('scheduled_at') }} as business_day,
        count(*) as jobs_scheduled,
        {{ count_by('status', statuses, 'jobs_status') }},
        sum(estimated_hours) as estimated_hours,
        0::bigint as jobs_completed
    from jobs
    group by 1, 2
),

completed as (
    select
        organization_id,
        {{ business_day('completed_at') }} as business_day,
        0::bigint as jobs_scheduled,
        {%- for status in statuses %}
            0::bigint as jobs_status_{{ status }},
        {%- endfor %}
        0::numeric as estimated_hours,
        count(*) as jobs_completed
    from jobs
    where status = 'completed' and completed_at is not null
    group by 1, 2
),

facts as (
    select * from scheduled
    union all
    select * from completed
),

final as (
    select
        organization_id,
        business_day,
        sum(jobs_scheduled)::bigint as jobs_scheduled,
        {%- for status in statuses %}
            sum(jobs_status_{{ status }})::bigint as jobs_status_{{ status }},
        {%- endfor %}
        sum(estimated_hours) as estimated_hours,
        sum(jobs_completed)::bigint as jobs_completed
    from facts
    group by 1, 2
)

select * from final
