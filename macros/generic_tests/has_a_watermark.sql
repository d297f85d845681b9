{#
  has_a_watermark: after its run, a materialized view has its watermark row and the
  watermark is not in the future. Declared on every dashboard_mv model (a generic test, so
  `dbt build` runs it after the view); data-tests/bookkeeping/every_view_has_a_watermark.sql
  checks from the graph that no dashboard_mv lacks it.
#}
{% test has_a_watermark(model) %}
    with

    expected as (
        select {{ dashquery_literal(model.identifier) }} as view_name
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
{% endtest %}
