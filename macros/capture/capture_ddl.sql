{#
  The DDL of change capture (macros/capture/capture.sql generates the functions' bodies):
  which triggers a table needs, what exists now, installing and removing them.
#}

{#
  dashquery_capture_triggers: the triggers a table wants, by name suffix: the three
  statement-level AFTER triggers with transition tables (one event each: PostgreSQL refuses
  transition tables on a trigger with more than one event) and, when an entry names
  on_update_of columns, the row-level mark trigger (dashquery_capture_marked). Each with
  what pg_trigger holds for it: tgtype (statement-level AFTER INSERT 4, UPDATE 16, DELETE 8;
  row-level AFTER UPDATE 17), transition table names, and tgargs as encode(.., 'escape')
  (the mark trigger's argument is its column list, so a changed list is a changed trigger).
#}
{% macro dashquery_capture_triggers(table, entries) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set function = dashquery_capture_function(table) -%}
    {%- set wanted = {
        'ins': {'tgtype': 4, 'old': '', 'new': 'dq_new', 'args': '',
                'create': 'after insert on ' ~ relation ~ ' referencing new table as dq_new for each statement execute function ' ~ function ~ '()'},
        'upd': {'tgtype': 16, 'old': 'dq_old', 'new': 'dq_new', 'args': '',
                'create': 'after update on ' ~ relation ~ ' referencing old table as dq_old new table as dq_new for each statement execute function ' ~ function ~ '()'},
        'del': {'tgtype': 8, 'old': 'dq_old', 'new': '', 'args': '',
                'create': 'after delete on ' ~ relation ~ ' referencing old table as dq_old for each statement execute function ' ~ function ~ '()'},
    } -%}
    {%- set marked = dashquery_capture_marked(entries) -%}
    {%- if marked -%}
        {%- set old_columns = [] -%}
        {%- set new_columns = [] -%}
        {%- for column in marked -%}
            {%- do old_columns.append('old.' ~ adapter.quote(column)) -%}
            {%- do new_columns.append('new.' ~ adapter.quote(column)) -%}
        {%- endfor -%}
        {%- do wanted.update({'mark': {'tgtype': 17, 'old': '', 'new': '', 'args': marked | join(',') ~ '\\000',
            'create': 'after update on ' ~ relation ~ ' for each row when ((' ~ old_columns | join(', ')
                ~ ') is distinct from (' ~ new_columns | join(', ') ~ ')) execute function ' ~ function
                ~ '(' ~ dashquery_literal(marked | join(',')) ~ ')'}}) -%}
    {%- endif -%}
    {{ return(wanted) }}
{%- endmacro %}


{# Every suffix a capture trigger may have (what removing capture drops). #}
{% macro dashquery_capture_suffixes() -%}
    {{ return(['ins', 'upd', 'del', 'mark']) }}
{%- endmacro %}


{#
  dashquery_capture_state: what exists now for a table: {'function': its prosrc or none,
  'triggers': how many of the wanted triggers exist exactly as wanted and enabled,
  'any_trigger': how many dq_capture_<table>_* triggers exist at all}.
#}
{% macro dashquery_capture_state(table, wanted) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set function = dashquery_capture_function(table) ~ '()' -%}
    {%- set rows = [] -%}
    {%- for suffix, t in wanted.items() -%}
        {%- do rows.append('(' ~ dashquery_literal('dq_capture_' ~ table ~ '_' ~ suffix) ~ ', ' ~ t.tgtype ~ ', '
            ~ dashquery_literal(t.old) ~ ', ' ~ dashquery_literal(t.new) ~ ', ' ~ dashquery_literal(t.args) ~ ')') -%}
    {%- endfor -%}
    {%- if not rows -%}
        {%- do rows.append('(null, null, null, null, null)') -%}
    {%- endif -%}
    {%- set found = run_query(
        "select (select p.prosrc || case when p.prosecdef then '' else ' -- not security definer' end"
        ~ " from pg_catalog.pg_proc as p where p.oid = to_regprocedure(" ~ dashquery_literal(function) ~ ")), "
        ~ "(select count(*) from pg_catalog.pg_trigger as t where t.tgrelid = to_regclass("
        ~ dashquery_literal(relation) ~ ") and t.tgfoid = coalesce(to_regprocedure("
        ~ dashquery_literal(function) ~ "), 0) and t.tgenabled = 'O' and "
        ~ "(t.tgname::text, t.tgtype::integer, coalesce(t.tgoldtable::text, ''), coalesce(t.tgnewtable::text, ''),"
        ~ " encode(t.tgargs, 'escape')) in (" ~ rows | join(', ') ~ ")), "
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


{#
  dashquery_capture_install: a table's function and triggers, DDL only for what differs.
  The function comes first: a new mark trigger calls it at row level, which only the new
  body handles.
#}
{% macro dashquery_capture_install(table, entries) -%}
    {%- set relation = dashquery_capture_source(table) -%}
    {%- set function = dashquery_capture_function(table) -%}
    {%- set body = dashquery_capture_body(table, entries) -%}
    {%- set wanted = dashquery_capture_triggers(table, entries) -%}
    {%- set state = dashquery_capture_state(table, wanted) -%}
    {%- set statements = [] -%}
    {%- if state.function != body -%}
        {%- do statements.append('create or replace function ' ~ function ~ '() returns trigger'
            ~ ' language plpgsql security definer set search_path = pg_catalog, pg_temp'
            ~ ' as $dq_capture$' ~ body ~ '$dq_capture$') -%}
    {%- endif -%}
    {%- if state.triggers != wanted | length or state.any_trigger != wanted | length -%}
        {#- a table whose triggers were missing was not captured meanwhile: capture restarts now -#}
        {%- do statements.append('update ' ~ bookkeeping_relation('dashquery_deployment').include(database=false)
            ~ ' set capture = false, capture_since = null where capture') -%}
        {%- for suffix in dashquery_capture_suffixes() -%}
            {%- set name = adapter.quote('dq_capture_' ~ table ~ '_' ~ suffix) -%}
            {%- if suffix in wanted -%}
                {%- do statements.append('create or replace trigger ' ~ name ~ ' ' ~ wanted[suffix].create) -%}
            {%- else -%}
                {%- do statements.append('drop trigger if exists ' ~ name ~ ' on ' ~ relation) -%}
            {%- endif -%}
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
    {%- set state = dashquery_capture_state(table, {}) -%}
    {%- set statements = [] -%}
    {%- for suffix in dashquery_capture_suffixes() if state.any_trigger > 0 -%}
        {%- do statements.append('drop trigger if exists ' ~ adapter.quote('dq_capture_' ~ table ~ '_' ~ suffix) ~ ' on ' ~ relation) -%}
    {%- endfor -%}
    {%- do statements.append('drop function if exists ' ~ dashquery_capture_function(table) ~ '()') -%}
    {%- if state.any_trigger > 0 or state.function is not none -%}
        {%- do log('dashquery capture: removing from ' ~ relation, info=true) -%}
        {%- do run_query(dashquery_retrying_on_lock(statements)) -%}
    {%- endif -%}
{%- endmacro %}
