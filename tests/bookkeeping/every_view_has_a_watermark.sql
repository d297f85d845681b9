-- After a run, every dashboard_mv model has its watermark row, and no watermark is in the future.
{%- set views = [] %}
{%- for node in graph.nodes.values()
    if node.resource_type == 'model' and node.config.materialized == 'dashboard_mv' %}
    {%- do views.append(node.alias) %}
{%- endfor %}

with

expected as (
    select unnest(array['{{ views | join("', '") }}']) as view_name
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
