-- One row per tenant (organizations has no soft delete).
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    id as organization_id,
    name,
    created_at,
    updated_at
from {{ source('application', 'organizations') }}
