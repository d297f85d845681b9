-- Every materialized view, i.e. every dashboard_mv model in the graph (not a hand-written
-- list), carries the has_a_watermark test, which checks after the view's run that its
-- watermark row exists and is not in the future. A new mv declared without it fails here.
-- Why two parts: dbt fills `graph` only at execution, so a test that finds the views there
-- cannot ref() them and `dbt build` would run it before they exist; a generic test on each
-- view is ordered after it by dbt itself. This one reads no relation, so its order is free.
{%- set views = [] %}
{%- set unchecked = [] %}
{%- if execute %}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.config.materialized == 'dashboard_mv' %}
        {%- do views.append(node.alias) %}
        {%- set checked = namespace(found=false) %}
        {%- for test in graph.nodes.values()
            if test.resource_type == 'test' and test.attached_node == node.unique_id
            and (test.test_metadata or {}).get('name') == 'has_a_watermark' %}
            {%- set checked.found = true %}
        {%- endfor %}
        {%- if not checked.found %}
            {%- do unchecked.append(node.alias) %}
        {%- endif %}
    {%- endfor %}
{%- endif %}

with

unchecked as (
    select
        view_name,
        'has no has_a_watermark test in its yml' as problem
    from unnest({{ dashquery_text_array(unchecked) }}) as view_name
),

no_views as (
    select
        null as view_name,
        'no dashboard_mv model found in the graph' as problem
    where {{ views | length }} = 0
)

select * from unchecked
union all
select * from no_views
