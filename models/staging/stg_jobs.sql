-- Live jobs: a soft-deleted row (deleted_at set) counts nowhere (contract §2).
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    id as job_id,
    organization_id,
    order_id,
    customer_id,
    status,
    scheduled_at,
    completed_at,
    estimated_hours,
    created_at,
    updated_at
from {{ source('application', 'jobs') }}
where deleted_at is null
