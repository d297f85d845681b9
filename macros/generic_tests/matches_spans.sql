{#
  matches_spans: a relation's <relation>__ends and <relation>__gaps (macros/spans.sql) hold
  exactly what its rows' sets give when recomputed, both ways (EXCEPT ALL): the read path
  counts a range's entities from them, so a wrong row would be a wrong number. Zero rows are
  ignored (an incremental refresh leaves a period whose counts went back to 0). Passes
  trivially when the relation keeps no spans (the concurrent strategy).
#}
{% test matches_spans(model, column_name, entity) %}
    {#- only when executing: while parsing, `model` is the test's own (long) name -#}
    {%- set tables = dashboard_mv_spans_relations(model) if execute else none -%}
    {%- set found = adapter.get_relation(database=model.database, schema=model.schema, identifier=tables.gaps.identifier) if execute else none -%}
    {%- if found is none %}
    select 1 as no_spans where false
    {%- else %}
    with

    expected_ends as (
        {{ dashboard_mv_spans_ends_select('select organization_id, 1 as sign, ' ~ adapter.quote(column_name) ~ ' from ' ~ model, column_name) }}
    ),

    stored_ends as (
        select organization_id, grain, period_start, first_count, last_count
        from {{ tables.ends }}
        where first_count <> 0 or last_count <> 0
    ),

    expected_gaps as (
        {{ dashboard_mv_spans_gaps_select(model, entity, column_name) }}
    ),

    stored_gaps as (
        select * from {{ tables.gaps }}
    ),

    ends_differences as (
        {{ symmetric_difference('stored_ends', 'expected_ends') }}
    ),

    gaps_differences as (
        {{ symmetric_difference('stored_gaps', 'expected_gaps') }}
    )

    select 'ends' as spans_table, count(*) as differences from ends_differences having count(*) > 0
    union all
    select 'gaps', count(*) from gaps_differences having count(*) > 0
    {%- endif %}
{% endtest %}
