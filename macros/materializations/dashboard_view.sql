{#
  dashboard_view: a plain view replaced in place with CREATE OR REPLACE VIEW, and only when
  its definition changed.
  dbt-postgres' `view` materialization swaps in a new view and drops the old one with
  CASCADE, which would silently drop every materialized view built on it on each `dbt run`.
  Replacing in place keeps the dependent materialized views (and their readers) intact;
  dashboard_mv notices the changed definition through its hash and rebuilds them safely.
  What else it does:
    - an unchanged view (the md5 of its compiled SQL equals the one recorded in
      dashquery_relations) costs no DDL at all: every nightly `dbt build` re-runs every
      daily view, and a CREATE OR REPLACE VIEW queues for an ACCESS EXCLUSIVE lock behind
      any long reader, with every later reader queued behind it;
    - DDL that must run takes its lock with a short lock_timeout and retries
      (dashquery_retrying_on_lock), so readers never wait behind it for longer than that;
    - its dashquery_relations row (definition hash, time zone, source schema), its grants
      (dbt `grants` config + var dashquery_read_roles) and persisted docs are written in the
      same transaction as the DDL.
  A change PostgreSQL cannot replace in place (a column dropped, renamed or retyped:
  CREATE OR REPLACE VIEW fails with invalid_table_definition) drops the view and creates it
  again in the same transaction, without CASCADE: nothing of dashquery's depends on a view
  in the catalog (the incremental strategy's relations are tables filled from it; a changed
  view makes them rebuild through their definition hash), so an upgrade that moves a column
  between views needs no extra step. Something that does depend on it (the concurrent
  strategy's materialized views, an analyst's own view) makes the run fail naming it: then
  run it with --full-refresh, which drops the view with its dependents (rebuilt in the same
  run; the read path reads those blocks live meanwhile).
#}
{% materialization dashboard_view, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set definition_hash = dashquery_definition_hash(sql) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if existing_relation is none -%}
        {%- set action = 'create' -%}
    {%- elif should_full_refresh() or existing_relation.type != 'view' -%}
        {%- set action = 'recreate' -%}
    {%- elif dashquery_stored_definition_hash(target_relation, 'view') == definition_hash -%}
        {%- set action = 'unchanged' -%}
    {%- else -%}
        {%- set action = 'replace' -%}
    {%- endif -%}
    {%- if action == 'recreate' -%}
        {#- the drop cascades: forget the dependents in dbt's cache, as adapter.drop_relation does -#}
        {%- do adapter.cache_dropped(existing_relation) -%}
    {%- endif -%}
    {% call statement('main') -%}
        {%- if action != 'unchanged' %}
        {{ dashboard_view_replace(target_relation, existing_relation if action == 'recreate' else none, sql) }};
        {%- endif %}
        {{ dashquery_record_relation(target_relation, 'view', definition_hash) }}
    {%- endcall %}
    {#- a new view starts without grants; one replaced in place keeps them -#}
    {%- do apply_grants(target_relation, dashquery_grant_config(), should_revoke=(action in ['replace', 'unchanged'])) -%}
    {%- if action != 'unchanged' -%}
        {%- do persist_docs(target_relation, model) -%}
    {%- endif -%}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {%- do store_raw_result(name='main', message=action | upper, code='OK', rows_affected=-1) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#
  dashboard_view_replace: CREATE OR REPLACE VIEW (after dropping the relation in the way,
  with its dependents, on --full-refresh), under dashquery_retrying_on_lock. When the new
  columns do not extend the old ones (invalid_table_definition), DROP VIEW (RESTRICT) and
  CREATE VIEW instead, in the same subtransaction: a dependent fails the run with a hint.
#}
{% macro dashboard_view_replace(relation, dropped, sql) -%}
    {%- set statements = [] -%}
    {%- if dropped is not none -%}
        {%- do statements.append(dashquery_drop_sql(dropped, cascade=true)) -%}
    {%- endif -%}
    {%- do dashquery_refuse_dollar_tags('dashboard_view ' ~ relation, [sql], ['$dq_view$', '$dq_view_sql$']) -%}
    {%- set body = ' as\n' ~ sql -%}
    {%- set statement -%}
do $dq_view$
declare
    reason text;
    dependents text;
begin
    execute $dq_view_sql$create or replace view {{ relation }}{{ body }}$dq_view_sql$;
exception when invalid_table_definition then
    reason := sqlerrm;
    begin
        execute $dq_view_sql${{ dashquery_drop_sql(relation, if_exists=false) }}$dq_view_sql$;
    exception when dependent_objects_still_exist then
        get stacked diagnostics dependents = pg_exception_detail;
        raise exception 'dashquery: % cannot be replaced in place (%) and other relations depend on it (%): run it with --full-refresh (dbt run --full-refresh --select <model>+), which drops them with it and rebuilds the project''s own', {{ dashquery_literal(relation | string) }}, reason, dependents
            using errcode = 'dependent_objects_still_exist';
    end;
    execute $dq_view_sql$create view {{ relation }}{{ body }}$dq_view_sql$;
end
$dq_view$
    {%- endset -%}
    {%- do statements.append(statement) -%}
    {{ dashquery_retrying_on_lock(statements) }}
{%- endmacro %}


{# dashquery_drop_sql: DROP of a relation of any kind dbt knows. #}
{% macro dashquery_drop_sql(relation, cascade=false, if_exists=true) -%}
    {%- set kinds = {'view': 'view', 'table': 'table', 'materialized_view': 'materialized view'} -%}
    {%- if relation.type not in kinds -%}
        {{ exceptions.raise_compiler_error("dashquery: cannot drop " ~ relation ~ " of type " ~ relation.type) }}
    {%- endif -%}
    drop {{ kinds[relation.type] }}{{ ' if exists' if if_exists }} {{ relation }}{{ ' cascade' if cascade }}
{%- endmacro %}
