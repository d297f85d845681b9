{#
  Change capture (issue 13): the after-commit post-hooks install the capture triggers and
  functions on every application table a block reads (generated from the blocks'
  meta.dashquery_capture, see macros/capture/capture.sql), or remove them when var
  dashquery_capture is false, and record the state in dashquery_deployment.capture.
  First the two indexes the dependant lookups use (a changed order line finds its order's
  completed jobs; a deleted job finds its time entries), built concurrently. This model runs
  after source_indexes (the depends_on below): two concurrent CREATE INDEX CONCURRENTLY of
  partial indexes can deadlock.
#}
{{ config(
    materialized='dashboard_view',
    post_hook=[
        after_commit("{{ dashquery_capture_index('jobs', 'capture_order', ['order_id'], where=\"deleted_at is null and status = 'completed'\", include=['organization_id', 'completed_at']) }}"),
        after_commit("{{ dashquery_capture_index('job_time_entries', 'capture_job', ['job_id'], include=['organization_id', 'worked_at']) }}"),
        after_commit("{{ dashquery_capture_sync() }}"),
    ],
) }}

-- depends_on: {{ ref('source_indexes') }}
-- What exists now: every capture trigger on the application tables and its function, so
-- `select * from capture_triggers` answers "is capture installed?".
select
    app_table.relname as table_name,
    capture_trigger.tgname as trigger_name,
    trigger_function.proname as function_name,
    capture_trigger.tgenabled <> 'D' as enabled
from pg_catalog.pg_trigger as capture_trigger
inner join pg_catalog.pg_class as app_table on capture_trigger.tgrelid = app_table.oid
inner join pg_catalog.pg_namespace as app_schema on app_table.relnamespace = app_schema.oid
inner join pg_catalog.pg_proc as trigger_function on capture_trigger.tgfoid = trigger_function.oid
where
    app_schema.nspname = {{ dashquery_literal(source("application", "orders").schema) }}
    and capture_trigger.tgname like 'dq\_capture\_%'
