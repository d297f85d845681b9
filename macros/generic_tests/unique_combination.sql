{#
  unique_combination: no two rows share the values of `columns` (the materialized views'
  unique keys, which REFRESH ... CONCURRENTLY relies on). A project macro because dbt
  packages (dbt_utils) cannot be installed here.
#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
