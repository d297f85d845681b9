with

orders as (
    select * from {{ ref('stg_orders') }}
),

final as (
    select
        organization_id,
        {{ business_day('created_at') }} as business_day,
        count(*) as orders_count,
        count(*) filter (where status = 'delivered') as delivered_orders,
        count(*) filter (where status in {{ sql_values(metric_values('pending_order_statuses')) }}) as pending_orders,
        count(*) filter (where status = 'cancelled') as cancelled_orders,
        count(*) filter (where status <> 'cancelled') as non_cancelled_orders,
        coalesce(sum(total_cents) filter (where status <> 'cancelled'), 0)::bigint
            as total_order_value_cents,
        coalesce(sum(total_cents) filter (where status = 'delivered'), 0)::bigint
            as revenue_cents
    from orders
    group by 1, 2
)

select * from final
