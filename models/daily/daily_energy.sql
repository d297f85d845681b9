with

completed_jobs as (
    select * from {{ source('application', 'jobs') }}
    where deleted_at is null and status = 'completed' and completed_at is not null
),

orders as (
    select * from {{ source('application', 'orders') }}
    where deleted_at is null
),

order_items as (
    select * from {{ source('application', 'order_items') }}
),

products as (
    select * from {{ source('application', 'products') }}
),

-- A job without an order (or whose order is deleted) has no items and adds 0.
job_items as (
    select
        completed_jobs.organization_id,
        completed_jobs.completed_at,
        -- contract §3 capacity(product): junk or out-of-range values count as 0, never fail
        order_items.quantity * {{ capacity_kwh('products.specifications') }} as kwh
    from completed_jobs
    left join orders on completed_jobs.order_id = orders.id
    left join order_items on orders.id = order_items.order_id
    left join products on order_items.product_id = products.id
),

final as (
    select
        organization_id,
        {{ business_day('completed_at') }} as business_day,
        coalesce(sum(kwh), 0) as kwh_deployed
    from job_items
    group by 1, 2
)

select * from final
