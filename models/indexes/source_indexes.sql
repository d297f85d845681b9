{#
  The indexes the read path needs on the application tables, declared as after-commit
  post-hooks (CREATE INDEX CONCURRENTLY never blocks the application's writes; see the
  source_index macro). They all live on this one model on purpose: two concurrent
  CREATE INDEX CONCURRENTLY of expression or partial indexes wait for each other's
  snapshots and deadlock, and dbt runs models in parallel; one model's hooks run in order.

  Each index serves the live half of a daily view: its predicates are
  organization_id = ? and day(ts) >= day(watermark), with the view's own filters as the
  partial-index predicate. docs/QUERY-PLANS.md shows the plans using them.
#}
{{ config(
    materialized='dashboard_view',
    post_hook=[
        after_commit("{{ source_index('orders', 'org_created_day', ['organization_id', business_day('created_at')], where='deleted_at is null', include=['status', 'total_cents', 'customer_id']) }}"),
        after_commit("{{ source_index('order_items', 'order', ['order_id'], include=['product_id', 'quantity']) }}"),
        after_commit("{{ source_index('jobs', 'org_completed_day', ['organization_id', business_day('completed_at')], where=\"deleted_at is null and status = 'completed'\", include=['order_id']) }}"),
        after_commit("{{ source_index('jobs', 'org_scheduled_day', ['organization_id', business_day('scheduled_at')], where='deleted_at is null', include=['status', 'estimated_hours']) }}"),
        after_commit("{{ source_index('job_time_entries', 'org_worked_day', ['organization_id', business_day('worked_at')], include=['job_id', 'hours']) }}"),
        after_commit("{{ source_index('opportunities', 'org_created_day', ['organization_id', business_day('created_at')], where='deleted_at is null', include=['stage', 'value_cents', 'probability']) }}"),
        after_commit("{{ source_index('opportunities', 'org_closed_day', ['organization_id', business_day('closed_at')], where=\"deleted_at is null and stage in ('won', 'lost')\", include=['value_cents']) }}"),
        after_commit("{{ source_index('warranty_claims', 'org_created_day', ['organization_id', business_day('created_at')], where='deleted_at is null', include=['status', 'claim_type', 'resolved_at']) }}"),
        after_commit("{{ source_index('jobs', 'org_active', ['organization_id'], where=\"deleted_at is null and status in ('scheduled', 'in_progress')\") }}"),
        after_commit("{{ source_index('warranty_claims', 'org_open', ['organization_id'], where=\"deleted_at is null and status in ('pending', 'approved')\") }}"),
        after_commit("{{ source_index('opportunities', 'org_open', ['organization_id'], where=\"deleted_at is null and stage not in ('won', 'lost')\", include=['value_cents', 'probability']) }}"),
        after_commit("{{ source_index('customers', 'org_active', ['organization_id'], where=\"deleted_at is null and status = 'active'\") }}"),
        after_commit("{{ analyze_sources(['orders', 'order_items', 'jobs', 'job_time_entries', 'opportunities', 'warranty_claims', 'customers']) }}"),
    ],
) }}

-- What exists now: every dashquery index on the application tables and its definition,
-- so `select * from source_indexes` answers "are the indexes there?".
select
    tablename as table_name,
    indexname as index_name,
    indexdef as definition
from pg_catalog.pg_indexes
where
    schemaname = {{ dashquery_literal(source("application", "orders").schema) }}
    and indexname like 'dq\_%'
