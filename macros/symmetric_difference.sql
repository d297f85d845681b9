{#
  symmetric_difference: the rows found in only one of two relations (or CTEs), labelled
  with the side they came from. The body of every "materialized equals direct" test: an
  empty result means the two agree row for row.
#}
{% macro symmetric_difference(left, right) %}
    select
        {{ dashquery_literal(left ~ ' only') }} as side,
        left_only.*
    from (select * from {{ left }} except select * from {{ right }}) as left_only
    union all
    select
        {{ dashquery_literal(right ~ ' only') }} as side,
        right_only.*
    from (select * from {{ right }} except select * from {{ left }}) as right_only
{% endmacro %}
