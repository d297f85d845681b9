-- Products sold (products has no soft delete); specifications feeds capacity_kwh().
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    id as product_id,
    organization_id,
    name,
    specifications,
    unit_price_cents,
    created_at
from {{ source('application', 'products') }}
