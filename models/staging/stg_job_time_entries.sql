-- Time entries of live jobs. job_time_entries has no soft delete of its own: contract §2
-- counts hours only while their job is live, so that rule is applied here, once, beside the
-- job's own filter (stg_jobs), and no model over time entries can forget it. A semi-join
-- (EXISTS) takes no column of the job, so this stays one row per source entry.
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    job_time_entries.id as job_time_entry_id,
    job_time_entries.organization_id,
    job_time_entries.job_id,
    job_time_entries.hours,
    job_time_entries.worked_at,
    job_time_entries.created_at
from {{ source('application', 'job_time_entries') }} as job_time_entries
where exists (
    select 1 from {{ ref('stg_jobs') }} as jobs
    where jobs.job_id = job_time_entries.job_id
)
