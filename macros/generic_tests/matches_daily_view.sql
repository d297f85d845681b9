{#
  matches_daily_view: the materialized view holds exactly what its daily view computes for
  every day before day(watermark) — the half of the hybrid read that comes from the view.
  Rows are compared both ways (symmetric_difference), so a missing, extra or different row
  fails (duplicates are the unique-key test's).
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
    )

    {{ symmetric_difference('materialized', 'live') }}
{% endtest %}
