-- One row per organization, business day and ordering customer: the building block that
-- keeps unique_customers exact over any range (a distinct count never adds up over days).
with

orders as (
    select * from {{ ref('stg_orders') }}
),

final as (
    select
        organization_id,
        {{ business_day('created_at') }} as business_day,
        customer_id
    from orders
    group by 1, 2, 3
)

select * from final
