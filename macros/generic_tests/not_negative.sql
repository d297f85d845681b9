{# not_negative: counts, sums of cents and hours can never be below zero. #}
{% test not_negative(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
