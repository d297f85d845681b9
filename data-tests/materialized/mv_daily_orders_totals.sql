-- mv_daily_orders summed over all days equals the orders table aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(orders_count) as orders_count,
        sum(delivered_orders) as delivered_orders,
        sum(pending_orders) as pending_orders,
        sum(cancelled_orders) as cancelled_orders,
        sum(total_order_value_cents) as total_order_value_cents,
        sum(revenue_cents) as revenue_cents
    from {{ ref('mv_daily_orders') }}
    group by 1
),

direct as (
    select
        organization_id,
        count(*) as orders_count,
        count(*) filter (where status = 'delivered') as delivered_orders,
        count(*) filter (
            where status in ('draft', 'confirmed', 'picking', 'picked', 'shipped')
        ) as pending_orders,
        count(*) filter (where status = 'cancelled') as cancelled_orders,
        coalesce(sum(total_cents) filter (where status <> 'cancelled'), 0) as total_order_value_cents,
        coalesce(sum(total_cents) filter (where status = 'delivered'), 0) as revenue_cents
    from {{ source('application', 'orders') }}
    where deleted_at is null
    group by 1
)

{{ symmetric_difference('materialized', 'direct') }}
