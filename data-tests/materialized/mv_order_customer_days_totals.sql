-- Every customer's order days in mv_order_customer_days are exactly the business days of
-- their live orders: the multirange unnested back to days equals the orders table.
with

materialized as (
    select
        organization_id,
        customer_id,
        lower(day_range) + offset_days as business_day
    from {{ ref('mv_order_customer_days') }},
        unnest(order_days) as day_range,
        generate_series(0, upper(day_range) - lower(day_range) - 1) as offset_days
),

direct as (
    select distinct
        organization_id,
        customer_id,
        {{ business_day('created_at') }} as business_day
    from {{ source('application', 'orders') }}
    where deleted_at is null
)

{{ symmetric_difference('materialized', 'direct') }}
