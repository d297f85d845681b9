{#
  Change capture (issue 13 item 1): statement-level AFTER triggers with transition tables on
  every application table a block reads, generated from the blocks' mappings.

  The mapping lives beside each block's model, in its yml: config.meta.dashquery_capture
  (beside meta.dashquery, which the catalog test compares field by field), one entry per
  application table the block's groups depend on:
      <table>: "<select returning organization_id, business_day from `changed`>"
      <table>: {select: "<select>", on_update_of: [<columns>]}
      <table>: [<entry>, <entry>, ...]
  `changed` holds the statement's transition rows: the new rows of an INSERT, the old rows of
  a DELETE, old and new rows of an UPDATE (with on_update_of: only the rows of updated rows
  whose listed columns changed, paired on `id`; an unpaired row always counts). Two words are
  expanded, because dbt renders yml with no macros: business_day(<expr>) -> the
  business_day macro (the zone as a literal), source(<table>) -> the application table.
  Rows with a null organization or day are skipped, so a mapping need not filter nulls.

  For each table T named by any mapping, "<DASHQUERY_SCHEMA>".dq_capture_T() (PL/pgSQL,
  SECURITY DEFINER with search_path = pg_catalog, pg_temp: the application's roles need no
  privilege on dashquery_changes, and nothing they create can shadow what it calls) runs one
  INSERT ... SELECT DISTINCT over the UNION ALL of the blocks' selects for the event
  (PL/pgSQL plans a branch of the IF only when it runs), `on conflict do nothing` (the key
  ends with the transaction id: it dedups within the transaction only), and then
  pg_notify('dashquery_changes', <the organization ids it inserted, comma-separated>), in
  batches of 200 ids (a payload must stay under 8000 bytes). Triggers dq_capture_T_ins,
  dq_capture_T_upd, dq_capture_T_del (one event each: PostgreSQL refuses transition tables on
  a trigger with more than one event).

  What the application sees:
    - every INSERT / UPDATE / DELETE statement on T runs the function once, in its own
      transaction, after the statement (a failure in it fails the statement);
    - installing the triggers (first run, or after someone dropped them): CREATE OR REPLACE
      TRIGGER takes a SHARE ROW EXCLUSIVE lock on T, which waits for and then blocks the
      application's writes to T (never its reads) until that table's transaction commits,
      milliseconds. Each table is its own transaction, under lock_timeout
      var('dashquery_lock_timeout_ms') with retries (dashquery_retrying_on_lock), so writes
      queue behind it at most that long per attempt;
    - a changed mapping only replaces the function (CREATE OR REPLACE FUNCTION keeps its oid,
      so the triggers need no DDL and T takes no lock at all);
    - switching capture off (var dashquery_capture: false): DROP TRIGGER takes an ACCESS
      EXCLUSIVE lock on T (reads wait too), same timeout and retries; then the function goes;
    - an unchanged deployment costs no DDL: the function source and the three triggers are
      compared with the catalog first.
  Needs PostgreSQL 14+ (CREATE OR REPLACE TRIGGER) and the TRIGGER privilege on the tables.
  Triggers do not fire under session_replication_role = replica (logical replication apply).
#}

{# dashquery_capture_enabled: var dashquery_capture (default true) as a boolean. #}
{% macro dashquery_capture_enabled() -%}
    {%- set value = var('dashquery_capture', true) -%}
    {%- if value is string -%}
        {%- set value = value | lower -%}
        {%- if value in ['true', 'on', 'yes', '1'] -%}{{ return(true) }}{%- endif -%}
        {%- if value in ['false', 'off', 'no', '0'] -%}{{ return(false) }}{%- endif -%}
    {%- elif value in [true, false] -%}
        {{ return(value) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("var dashquery_capture must be true or false, not " ~ value) }}
{%- endmacro %}


{#
  dashquery_capture_mappings: {table: [{view, select, on_update_of}, ...]} from every model's
  meta.dashquery_capture, views in name order (a stable function body, so an unchanged
  project never replaces it).
#}
{% macro dashquery_capture_mappings() -%}
    {%- set tables = {} -%}
    {%- for node in graph.nodes.values() | sort(attribute='name')
        if node.resource_type == 'model' and node.package_name == project_name -%}
        {%- set mapping = (node.config.get('meta') or {}).get('dashquery_capture') or {} -%}
        {%- for table, given in mapping.items() | sort -%}
            {%- do dashquery_capture_source(table) -%}
            {%- set entries = [given] if given is string or given is mapping else given -%}
            {%- for entry in entries -%}
                {%- if entry is string -%}
                    {%- set entry = {'select': entry} -%}
                {%- endif -%}
                {%- if not entry.get('select') -%}
                    {{ exceptions.raise_compiler_error(node.name ~ ": meta.dashquery_capture." ~ table ~ " has no select") }}
                {%- endif -%}
                {%- do tables.setdefault(table, []).append({
                    'view': node.alias, 'select': entry['select'],
                    'on_update_of': entry.get('on_update_of') or []}) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(tables) }}
{%- endmacro %}


{# dashquery_capture_source: the Relation of an application table (source 'application'). #}
{% macro dashquery_capture_source(table) -%}
    {%- for node in graph.sources.values() if node.source_name == 'application' and node.name == table -%}
        {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier).include(database=false)) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("dashquery capture: no table " ~ table ~ " in source 'application'") }}
{%- endmacro %}


{# dashquery_capture_function: the capture function of a table (a Relation-like name). #}
{% macro dashquery_capture_function(table) -%}
    {{ adapter.quote(target.schema) }}.{{ adapter.quote('dq_capture_' ~ table) }}
{%- endmacro %}


{# dashquery_capture_render: a mapping's select with business_day(...) and source(...) expanded. #}
{% macro dashquery_capture_render(select) -%}
    {%- set ns = namespace(sql=select) -%}
    {%- for expr in modules.re.findall('business_day\\(([^()]+)\\)', select) -%}
        {%- set ns.sql = ns.sql.replace('business_day(' ~ expr ~ ')', business_day(expr | trim)) -%}
    {%- endfor -%}
    {%- for table in modules.re.findall('source\\((\\w+)\\)', select) -%}
        {%- set ns.sql = ns.sql.replace('source(' ~ table ~ ')', dashquery_capture_source(table) | string) -%}
    {%- endfor -%}
    {{ return(ns.sql) }}
{%- endmacro %}


{# dashquery_capture_changed: the `changed` rows for an event (new, old or update). #}
{% macro dashquery_capture_changed(event, on_update_of) -%}
    {%- if event == 'new' -%}
        select * from dq_new
    {%- elif event == 'old' -%}
        select * from dq_old
    {%- elif not on_update_of -%}
        select * from dq_old union all select * from dq_new
    {%- else -%}
        {%- set differs -%}
            ({% for c in on_update_of %}o.{{ adapter.quote(c) }}{{ ', ' if not loop.last }}{% endfor %}) is distinct from ({% for c in on_update_of %}n.{{ adapter.quote(c) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- endset -%}
        select o.* from dq_old as o left join dq_new as n on o.id = n.id
        where n.id is null or {{ differs }}
        union all
        select n.* from dq_new as n left join dq_old as o on n.id = o.id
        where o.id is null or {{ differs }}
    {%- endif -%}
{%- endmacro %}


{# dashquery_capture_insert: the one INSERT ... SELECT DISTINCT of an event, ids into `organizations`. #}
{% macro dashquery_capture_insert(entries, event) -%}
        with inserted as (
            insert into {{ bookkeeping_relation('dashquery_changes').include(database=false) }} (organization_id, daily_view, business_day)
            select distinct groups.organization_id, groups.daily_view, groups.business_day
            from (
            {%- for entry in entries %}
                select {{ dashquery_literal(entry.view) }}::text as daily_view, g.organization_id, g.business_day::date
                from (
                    with changed as ({{ dashquery_capture_changed(event, entry.on_update_of) }})
                    {{ dashquery_capture_render(entry.select) }}
                ) as g (organization_id, business_day)
                {%- if not loop.last %}
                union all
                {%- endif %}
            {%- endfor %}
            ) as groups
            where groups.organization_id is not null and groups.business_day is not null
            on conflict do nothing
            returning organization_id
        )
        select array_agg(distinct inserted.organization_id) into organizations from inserted;
{%- endmacro %}


{# dashquery_capture_body: the PL/pgSQL body of a table's capture function. #}
{% macro dashquery_capture_body(entries) -%}
declare
    organizations uuid[];
    batch_start integer;
begin
    if tg_op = 'INSERT' then
{{ dashquery_capture_insert(entries, 'new') }}
    elsif tg_op = 'UPDATE' then
{{ dashquery_capture_insert(entries, 'update') }}
    else
{{ dashquery_capture_insert(entries, 'old') }}
    end if;
    if organizations is not null then
        for batch_start in 1 .. cardinality(organizations) by 200 loop
            perform pg_notify('dashquery_changes', array_to_string(organizations[batch_start:batch_start + 199], ','));
        end loop;
    end if;
    return null;
end
{%- endmacro %}


{# The three triggers: name suffix -> (event, pg_trigger.tgtype of a statement-level AFTER trigger, transition tables). #}
{% macro dashquery_capture_events() -%}
    {{ return({
        'ins': {'event': 'insert', 'tgtype': 4, 'old': none, 'new': 'dq_new'},
        'upd': {'event': 'update', 'tgtype': 16, 'old': 'dq_old', 'new': 'dq_new'},
        'del': {'event': 'delete', 'tgtype': 8, 'old': 'dq_old', 'new': none},
    }) }}
{%- endmacro %}


{#
  dashquery_capture_state: what exists now for a table: {'function': its prosrc or none,
  'triggers': how many of its three triggers exist exactly as wanted, 'any_trigger': how
  many dq_capture_<table>_* triggers exist at all}.
#}
{% macro dashquery_capture_state(table) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set function = dashquery_capture_function(table) ~ '()' -%}
    {%- set wanted = [] -%}
    {%- for suffix, e in dashquery_capture_events().items() -%}
        {%- do wanted.append('(' ~ dashquery_literal('dq_capture_' ~ table ~ '_' ~ suffix) ~ ', ' ~ e.tgtype ~ ', '
            ~ dashquery_literal(e.old or '') ~ ', ' ~ dashquery_literal(e.new or '') ~ ')') -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select (select p.prosrc || case when p.prosecdef then '' else ' -- not security definer' end"
        ~ " from pg_catalog.pg_proc as p where p.oid = to_regprocedure(" ~ dashquery_literal(function) ~ ")), "
        ~ "(select count(*) from pg_catalog.pg_trigger as t where t.tgrelid = to_regclass("
        ~ dashquery_literal(relation) ~ ") and t.tgfoid = coalesce(to_regprocedure("
        ~ dashquery_literal(function) ~ "), 0) and t.tgenabled = 'O' and "
        ~ "(t.tgname::text, t.tgtype::integer, coalesce(t.tgoldtable::text, ''), coalesce(t.tgnewtable::text, '')) in ("
        ~ wanted | join(', ') ~ ")), "
        ~ "(select count(*) from pg_catalog.pg_trigger as t where t.tgrelid = to_regclass("
        ~ dashquery_literal(relation) ~ ") and t.tgname::text like "
        ~ dashquery_literal('dq\\_capture\\_' ~ table ~ '\\_%') ~ "), "
        ~ "to_regclass(" ~ dashquery_literal(relation) ~ ") is not null") -%}
    {%- set row = found.rows[0] -%}
    {%- if not row[3] -%}
        {{ exceptions.raise_compiler_error("dashquery capture: table " ~ relation ~ " does not exist") }}
    {%- endif -%}
    {{ return({'function': row[0], 'triggers': row[1] | int, 'any_trigger': row[2] | int}) }}
{%- endmacro %}


{#
  dashquery_capture_sync (the after-commit post-hook of models/capture/capture_triggers):
  installs or removes every table's function and triggers, one table per transaction (each
  run_query is its own statement, outside the model's committed transaction), and records
  the state in dashquery_deployment. Returns the statement recording it.
#}
{% macro dashquery_capture_sync() -%}
    {%- if not execute -%}{{ return('select 1') }}{%- endif -%}
    {%- set deployment = bookkeeping_relation('dashquery_deployment').include(database=false) -%}
    {%- set mappings = dashquery_capture_mappings() -%}
    {%- if dashquery_capture_enabled() -%}
        {%- for table, entries in mappings.items() | sort -%}
            {%- do dashquery_capture_install(table, entries) -%}
        {%- endfor -%}
        {#- every table's triggers are in place now: capture is on since now unless it already was -#}
        {{ return('update ' ~ deployment ~ ' set capture = true, capture_since = clock_timestamp() where not capture') }}
    {%- else -%}
        {%- do run_query('update ' ~ deployment ~ ' set capture = false, capture_since = null where capture') -%}
        {%- for table in mappings | sort -%}
            {%- do dashquery_capture_remove(table) -%}
        {%- endfor -%}
        {{ return('select 1') }}
    {%- endif -%}
{%- endmacro %}


{# dashquery_capture_install: a table's function and triggers, DDL only for what differs. #}
{% macro dashquery_capture_install(table, entries) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set function = dashquery_capture_function(table) -%}
    {%- set body = dashquery_capture_body(entries) -%}
    {%- set state = dashquery_capture_state(table) -%}
    {%- set statements = [] -%}
    {%- if state.function != body -%}
        {%- do statements.append('create or replace function ' ~ function ~ '() returns trigger'
            ~ ' language plpgsql security definer set search_path = pg_catalog, pg_temp'
            ~ ' as $dq_capture$' ~ body ~ '$dq_capture$') -%}
    {%- endif -%}
    {%- if state.triggers != 3 or state.any_trigger != 3 -%}
        {#- a table whose triggers were missing was not captured meanwhile: capture restarts now -#}
        {%- do statements.append('update ' ~ bookkeeping_relation('dashquery_deployment').include(database=false)
            ~ ' set capture = false, capture_since = null where capture') -%}
        {%- for suffix, e in dashquery_capture_events().items() -%}
            {%- do statements.append('create or replace trigger ' ~ adapter.quote('dq_capture_' ~ table ~ '_' ~ suffix)
                ~ ' after ' ~ e.event ~ ' on ' ~ relation
                ~ ' referencing' ~ (' old table as dq_old' if e.old else '') ~ (' new table as dq_new' if e.new else '')
                ~ ' for each statement execute function ' ~ function ~ '()') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if statements -%}
        {%- do log('dashquery capture: installing on ' ~ relation, info=true) -%}
        {%- do run_query(dashquery_retrying_on_lock(statements)) -%}
    {%- endif -%}
{%- endmacro %}


{# dashquery_capture_remove: a table's triggers, then its function, when any exists. #}
{% macro dashquery_capture_remove(table) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set state = dashquery_capture_state(table) -%}
    {%- set statements = [] -%}
    {%- for suffix in dashquery_capture_events() if state.any_trigger > 0 -%}
        {%- do statements.append('drop trigger if exists ' ~ adapter.quote('dq_capture_' ~ table ~ '_' ~ suffix) ~ ' on ' ~ relation) -%}
    {%- endfor -%}
    {%- do statements.append('drop function if exists ' ~ dashquery_capture_function(table) ~ '()') -%}
    {%- if state.any_trigger > 0 or state.function is not none -%}
        {%- do log('dashquery capture: removing from ' ~ relation, info=true) -%}
        {%- do run_query(dashquery_retrying_on_lock(statements)) -%}
    {%- endif -%}
{%- endmacro %}


{#
  dashquery_capture_index: an index the capture functions' dependant lookups need, as an
  after-commit post-hook: CREATE INDEX CONCURRENTLY IF NOT EXISTS (source_index) while
  capture is on, DROP INDEX CONCURRENTLY IF EXISTS of the same name when it is switched off.
  Neither blocks the application's reads or writes.
#}
{% macro dashquery_capture_index(table, name, columns, where=none, include=none) -%}
    {%- set create = source_index(table, name, columns, where=where, include=include) -%}
    {%- if dashquery_capture_enabled() -%}
        {{ create }}
    {%- else -%}
        {%- set index_name = modules.re.search('"([^"]+)"', create).group(1) -%}
        drop index concurrently if exists {{ adapter.quote(source('application', table).schema) }}.{{ adapter.quote(index_name) }}
    {%- endif -%}
{%- endmacro %}
