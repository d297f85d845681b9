{#
  metric_values(name): a value set of contract §2/§3 that metrics break down or filter by,
  read from var dashquery_value_sets (dbt_project.yml), so the daily views, their yml meta
  and the read path's catalog (checked against the manifest) share one list. Each value
  becomes part of a column name (<prefix>_<value>) and a string literal, so it must be a
  plain lowercase SQL name; anything else fails the compile instead of the SQL.
#}
{% macro metric_values(name) -%}
    {%- set value_sets = var('dashquery_value_sets') -%}
    {%- if name not in value_sets -%}
        {{ exceptions.raise_compiler_error("metric_values: var dashquery_value_sets has no list " ~ name) }}
    {%- endif -%}
    {%- for value in value_sets[name] -%}
        {%- if value is not string or not modules.re.match('^[a-z][a-z0-9_]*$', value) -%}
            {{ exceptions.raise_compiler_error("metric_values: " ~ name ~ " value " ~ value ~ " is not a plain lowercase name") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(value_sets[name]) }}
{%- endmacro %}


{#
  count_by: one count-if column per value, named <prefix>_<value>, so a breakdown such as
  jobs_by_status is additive across days like every other column.
#}
{% macro count_by(column, values, prefix) -%}
    {{ return(adapter.dispatch('count_by', 'dashquery')(column, values, prefix)) }}
{%- endmacro %}

{#- PostgreSQL's aggregate FILTER clause; an adapter without it would count a CASE instead. -#}
{% macro default__count_by(column, values, prefix) -%}
    {%- for value in values %}
    count(*) filter (where {{ column }} = '{{ value }}') as {{ prefix }}_{{ value }}
    {{- "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{# sql_values: a parenthesised list of SQL string literals, for `in (...)` filters. #}
{% macro sql_values(values) -%}
    ({% for value in values %}{{ dashquery_literal(value) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
