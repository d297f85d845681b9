{#
  matches_rollups: a block's <relation>__rollups (macros/rollups.sql) holds exactly the sums
  of the relation's day rows, per month and per year, both ways (EXCEPT ALL): the read path
  adds rollups in place of day rows, so a rollup that differs would be a wrong number.
  Passes trivially when the relation keeps no rollups (the concurrent strategy).
#}
{% test matches_rollups(model) %}
    {%- set rollups = dashboard_mv_rollups_relation(model) -%}
    {%- set found = adapter.get_relation(database=rollups.database, schema=rollups.schema, identifier=rollups.identifier) if execute else none -%}
    {%- if found is none %}
    select 1 as no_rollups where false
    {%- else %}
    {%- set columns = dashboard_mv_rollup_columns('select * from ' ~ model, ['organization_id', 'business_day']) -%}
    with

    expected as (
        {{ dashboard_mv_rollups_select(model, columns) }}
    ),

    stored as (
        select * from {{ found }}
    )

    {{ symmetric_difference('stored', 'expected') }}
    {%- endif %}
{% endtest %}
