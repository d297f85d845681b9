{#
  accepted_range: every value of the column lies within [min_value, max_value] (either bound
  optional; exclusive when inclusive=false). Here: counts, sums of cents and hours are never
  below zero (min_value: 0).
  Name, arguments and dispatched implementation (default__test_accepted_range) are
  dbt-utils', so adopting the package later changes no yml (see unique_combination_of_columns).
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
    {{ return(adapter.dispatch('test_accepted_range', 'dashquery')(model, column_name, min_value, max_value, inclusive)) }}
{% endtest %}

{% macro default__test_accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
    with

    meet_condition as (
        select * from {{ model }}
    ),

    validation_errors as (
        select * from meet_condition
        where
            -- never true: the base every optional bound below is or-ed onto
            1 = 2
            {%- if min_value is not none %}
            or not {{ column_name }} >{{ "=" if inclusive }} {{ min_value }}
            {%- endif %}
            {%- if max_value is not none %}
            or not {{ column_name }} <{{ "=" if inclusive }} {{ max_value }}
            {%- endif %}
    )

    select * from validation_errors
{% endmacro %}
