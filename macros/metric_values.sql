{#
  metric_values: the value sets of contract §2/§3 that metrics break down by, in one place,
  so the daily views and their tests loop over the same lists.
#}
{% macro metric_values(name) -%}
    {%- set values = {
        'pending_order_statuses': ['draft', 'confirmed', 'picking', 'picked', 'shipped'],
        'opportunity_stages': ['new', 'qualified', 'proposal', 'negotiation', 'won', 'lost'],
        'job_statuses': ['scheduled', 'in_progress', 'completed', 'cancelled'],
        'claim_statuses': ['pending', 'approved', 'rejected', 'resolved'],
        'claim_types': ['defect', 'damage', 'performance'],
    } -%}
    {%- if name not in values -%}
        {{ exceptions.raise_compiler_error("metric_values: unknown list " ~ name) }}
    {%- endif -%}
    {{ return(values[name]) }}
{%- endmacro %}


{#
  count_by: one `count(*) filter (...)` column per value, named <prefix>_<value>, so a
  breakdown such as jobs_by_status is additive across days like every other column.
#}
{% macro count_by(column, values, prefix) -%}
    {%- for value in values %}
    count(*) filter (where {{ column }} = '{{ value }}') as {{ prefix }}_{{ value }}
    {{- "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{# sql_values: a parenthesised list of SQL string literals, for `in (...)` filters. #}
{% macro sql_values(values) -%}
    ({% for value in values %}'{{ value }}'{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
