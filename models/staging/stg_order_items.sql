-- Order lines of live orders. order_items has no soft delete of its own: contract §2 counts a
-- line only while its order is live, so that rule is applied here, once, beside the order's
-- own filter (stg_orders), and no model over order lines can forget it. A semi-join (EXISTS)
-- takes no column of the order, so this stays one row per source line.
-- A plain select, not the import-CTE layout of the other models: PostgreSQL never flattens a
-- view with a WITH clause into the query reading it (is_simple_subquery), and joins through an
-- unflattened one (daily_energy: job -> order lines) hash whole tables on every live read.
select
    order_items.id as order_item_id,
    order_items.organization_id,
    order_items.order_id,
    order_items.product_id,
    order_items.quantity,
    order_items.unit_price_cents,
    order_items.line_total_cents,
    order_items.created_at
from {{ source('application', 'order_items') }} as order_items
where exists (
    select 1 from {{ ref('stg_orders') }} as orders
    where orders.order_id = order_items.order_id
)
