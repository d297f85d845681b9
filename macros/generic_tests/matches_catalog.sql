{#
  matches_catalog: the relation has exactly the columns its yml entry declares in
  `config.meta.dashquery` (the block catalog the read path is checked against), neither
  more nor fewer, so a column added to (or renamed in) a daily model without its catalog
  entry fails here instead of being ignored by the read path. The declared columns are
  key + additive + columns + one <prefix>_<value> per value of each breakdown's value set
  (var dashquery_value_sets, read through metric_values()).
#}
{% test matches_catalog(model) %}
    {%- set declared = dashquery_catalog_columns(model) %}

    with

    declared as (
        select unnest({{ dashquery_text_array(declared) }}) as column_name
    ),

    actual as (
        select column_name::text as column_name
        from information_schema.columns
        where
            table_schema = {{ dashquery_literal(model.schema) }}
            and table_name = {{ dashquery_literal(model.identifier) }}
    ),

    undeclared as (
        select 'in the relation, not in its yml meta' as problem, column_name
        from (select column_name from actual except select column_name from declared) as only_actual
    ),

    missing as (
        select 'in its yml meta, not in the relation' as problem, column_name
        from (select column_name from declared except select column_name from actual) as only_declared
    )

    select * from undeclared
    union all
    select * from missing
{% endtest %}


{#
  dashquery_catalog_columns(relation): the columns the model built as `relation` declares in
  its meta.dashquery (see matches_catalog). Execution time only: dbt fills `graph` then.
#}
{% macro dashquery_catalog_columns(relation) %}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- set found = namespace(meta=none) -%}
        {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.alias == relation.identifier and node.schema == relation.schema -%}
            {%- set found.meta = node.config.meta.get('dashquery') -%}
        {%- endfor -%}
        {%- if found.meta is none -%}
            {{ exceptions.raise_compiler_error("matches_catalog: " ~ relation ~ " has no config.meta.dashquery in its yml") }}
        {%- endif -%}
        {%- do columns.extend(found.meta.get('key', [])) -%}
        {%- do columns.extend(found.meta.get('additive', [])) -%}
        {%- do columns.extend(found.meta.get('columns', [])) -%}
        {%- for breakdown in found.meta.get('breakdowns', {}).values() -%}
            {%- for value in metric_values(breakdown['values_var']) -%}
                {%- do columns.append(breakdown['prefix'] ~ '_' ~ value) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(columns) }}
{% endmacro %}
