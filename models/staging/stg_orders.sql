-- Live orders: a soft-deleted row (deleted_at set) counts nowhere (contract §2).
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    id as order_id,
    organization_id,
    customer_id,
    status,
    total_cents,
    created_at,
    updated_at
from {{ source('application', 'orders') }}
where deleted_at is null
