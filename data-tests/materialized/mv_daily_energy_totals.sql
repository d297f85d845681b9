-- mv_daily_energy summed over all days equals kWh computed directly from completed jobs.
with

materialized as (
    select
        organization_id,
        sum(kwh_deployed) as kwh_deployed
    from {{ ref('mv_daily_energy') }}
    group by 1
),

direct as (
    select
        jobs.organization_id,
        sum(items.quantity * {{ capacity_kwh('products.specifications') }})
            as kwh_deployed
    from {{ source('application', 'jobs') }} as jobs
    inner join {{ source('application', 'orders') }} as orders
        on jobs.order_id = orders.id and orders.deleted_at is null
    inner join {{ source('application', 'order_items') }} as items on orders.id = items.order_id
    inner join {{ source('application', 'products') }} as products on items.product_id = products.id
    where jobs.deleted_at is null and jobs.status = 'completed'
    group by 1
)

select
    coalesce(materialized.organization_id, direct.organization_id) as organization_id,
    materialized.kwh_deployed as materialized_kwh,
    direct.kwh_deployed as direct_kwh
from materialized
full outer join direct on materialized.organization_id = direct.organization_id
where coalesce(materialized.kwh_deployed, 0) <> coalesce(direct.kwh_deployed, 0)
