{#
  dashboard_view: a plain view replaced in place with CREATE OR REPLACE VIEW.
  dbt-postgres' `view` materialization swaps in a new view and drops the old one with
  CASCADE, which would silently drop every materialized view built on it on each `dbt run`.
  Replacing in place keeps the dependent materialized views (and their readers) intact;
  dashboard_mv notices the changed definition through its hash and rebuilds them safely.
  A change PostgreSQL cannot replace in place (dropping or retyping a column) fails with
  its own message: run it with --full-refresh, which drops the view with its dependents
  (rebuilt in the same run; the read path reads those blocks live meanwhile).
#}
{% materialization dashboard_view, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing_relation = load_cached_relation(this) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if existing_relation is not none
        and (should_full_refresh() or existing_relation.type != 'view') %}
        {#- adapter.drop_relation cascades and also forgets the dependents in dbt's cache -#}
        {{ adapter.drop_relation(existing_relation) }}
    {%- endif %}
    {% call statement('main') -%}
        create or replace view {{ target_relation }} as
        {{ sql }};
    {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
