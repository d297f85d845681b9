-- kWh deployed per business day of completed_at: quantity × capacity(product) over the lines
-- of each completed job's order.
with

completed_jobs as (
    select * from {{ ref('stg_jobs') }}
    where status = 'completed' and completed_at is not null
),

order_items as (
    select * from {{ ref('stg_order_items') }}
),

products as (
    select * from {{ ref('stg_products') }}
),

-- A job without an order, or whose order is deleted (stg_order_items holds only the lines of
-- live orders), has no items and adds 0.
job_items as (
    select
        completed_jobs.organization_id,
        completed_jobs.completed_at,
        -- contract §3 capacity(product): junk or out-of-range values count as 0, never fail
        order_items.quantity * {{ capacity_kwh('products.specifications') }} as kwh
    from completed_jobs
    left join order_items on completed_jobs.order_id = order_items.order_id
    left join products on order_items.product_id = products.product_id
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
