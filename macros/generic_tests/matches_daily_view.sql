{#
  matches_daily_view: the materialized view holds exactly what its daily view computes for
  every day before day(watermark) — the half of the hybrid read that comes from the view.
  Rows are compared both ways with EXCEPT ALL, so a missing, extra or different row fails.
  Only meaningful when no source row changed since the refresh (true inside `dbt build`).
#}
{% test matches_daily_view(model, daily_view) %}
    with

    split as (
        select (watermark at time zone '{{ dashquery_timezone() }}')::date as split_day
        from {{ bookkeeping_relation('dashquery_watermarks') }}
        where view_name = {{ dashquery_literal(model.identifier) }}
    ),

    materialized as (
        select * from {{ model }}
        where business_day < (select split_day from split)
    ),

    live as (
        select * from {{ ref(daily_view) }}
        where business_day < (select split_day from split)
    ),

    missing as (
        select 'missing from the materialized view' as problem, * from (
            select * from live except all select * from materialized
        ) as rows_
    ),

    extra as (
        select 'not in the daily view' as problem, * from (
            select * from materialized except all select * from live
        ) as rows_
    )

    select * from missing
    union all
    select * from extra
{% endtest %}
