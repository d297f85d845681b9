-- Hours worked per business day of `worked_at` on live jobs (the time entries of deleted
-- jobs are already gone in stg_job_time_entries). Its index is declared in
-- models/indexes/source_indexes.sql.
-- A view of its own, not a fact of daily_jobs: a job's schedule, status or estimate moves
-- the job between days but never the hours worked, and a refresh recomputes whole rows, so
-- in one view every job edit re-read that day's time entries (each probing its job to
-- drop deleted ones): ~80% of daily_jobs' incremental refresh at 100x (docs/BENCHMARKS.md).
with

time_entries as (
    select * from {{ ref('stg_job_time_entries') }}
),

final as (
    select
        organization_id,
        {{ business_day('worked_at') }} as business_day,
        sum(hours) as labor_hours
    from time_entries
    group by 1, 2
)

select * from final
