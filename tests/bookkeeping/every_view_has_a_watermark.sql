-- After a run, every materialized view has its watermark row, and no watermark is in the future.
-- The refs make `dbt build` run this test after all of them.
{%- set views = [
    ref('mv_daily_orders'),
    ref('mv_order_customer_days'),
    ref('mv_daily_energy'),
    ref('mv_daily_pipeline'),
    ref('mv_daily_jobs'),
    ref('mv_daily_warranty'),
    ref('mv_current_state'),
] %}

with

expected as (
    -- The rendered list is one long line; its length says nothing about readability here.
    select unnest(array[{{ "'" ~ views | map(attribute='identifier') | join("', '") ~ "'" }}]) as view_name  -- noqa: LT05
),

watermarks as (
    select * from {{ bookkeeping_relation('dashquery_watermarks') }}
)

select
    expected.view_name,
    watermarks.watermark
from expected
left join watermarks on expected.view_name = watermarks.view_name
where watermarks.view_name is null or watermarks.watermark > now()
