{#
  unique_combination_of_columns: no two rows share the values of combination_of_columns (the
  materialized views' unique keys, which REFRESH ... CONCURRENTLY relies on).
  Name, arguments and dispatched implementation (default__test_unique_combination_of_columns)
  are dbt-utils', because dbt packages cannot be installed here. Adopting dbt-utils later:
  add it to packages.yml and put it first in the project's dispatch search order
  (dispatch: [{macro_namespace: dashquery, search_order: [dbt_utils, dashquery]}]), or delete
  this file and prefix the yml uses with `dbt_utils.`.
#}
{% test unique_combination_of_columns(model, combination_of_columns, quote_columns=false) %}
    {{ return(adapter.dispatch('test_unique_combination_of_columns', 'dashquery')(model, combination_of_columns, quote_columns)) }}
{% endtest %}

{% macro default__test_unique_combination_of_columns(model, combination_of_columns, quote_columns=false) %}
    {%- if quote_columns -%}
        {%- set column_list = [] -%}
        {%- for column in combination_of_columns -%}
            {%- do column_list.append(adapter.quote(column)) -%}
        {%- endfor -%}
    {%- else -%}
        {%- set column_list = combination_of_columns -%}
    {%- endif -%}
    {%- set columns_csv = column_list | join(', ') %}

    with

    validation_errors as (
        select {{ columns_csv }}
        from {{ model }}
        group by {{ columns_csv }}
        having count(*) > 1
    )

    select * from validation_errors
{% endmacro %}
