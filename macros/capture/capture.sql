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
  static INSERT ... SELECT DISTINCT over the UNION ALL of the blocks' selects for the event
  (static SQL: PL/pgSQL plans it once per session and trigger and reuses the plan; a branch
  of the IF is planned only when it runs; blocks with the same select share one branch,
  cross joined with their views), `on conflict do nothing` (the key ends with the transaction
  id: it dedups within the transaction only), and then, unless var dashquery_capture_notify
  is false, pg_notify('dashquery_changes', <the organization ids it inserted,
  comma-separated>), in batches of 200 ids (a payload must stay under 8000 bytes).
  Correctness never depends on the notification (the read path and the refresh read
  dashquery_changes; `dashquery listen` falls back to polling it). Triggers dq_capture_T_ins,
  dq_capture_T_upd, dq_capture_T_del (one event each: PostgreSQL refuses transition tables on
  a trigger with more than one event) and, on a table with on_update_of entries, the
  row-level dq_capture_T_mark (dashquery_capture_marked); their DDL is in capture_ddl.sql.
  What a single-row statement pays is mostly fixed per statement and per plan node (executor
  start-up of the INSERT, the ON CONFLICT arbiter probe, RETURNING for the notification),
  not per row: docs/BENCHMARKS.md, "Change capture".

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

{#
  dashquery_bool_var: a boolean project var (true/false, or on/off, yes/no, 1/0 as strings
  from --vars); anything else fails the run naming the var.
#}
{% macro dashquery_bool_var(name, default) -%}
    {%- set value = var(name, default) -%}
    {%- if value is string -%}
        {%- set value = value | lower -%}
        {%- if value in ['true', 'on', 'yes', '1'] -%}{{ return(true) }}{%- endif -%}
        {%- if value in ['false', 'off', 'no', '0'] -%}{{ return(false) }}{%- endif -%}
    {%- elif value in [true, false] -%}
        {{ return(value) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " must be true or false, not " ~ value) }}
{%- endmacro %}


{# dashquery_capture_enabled: var dashquery_capture (default true). #}
{% macro dashquery_capture_enabled() -%}
    {{ return(dashquery_bool_var('dashquery_capture', true)) }}
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


{#
  dashquery_capture_render: a mapping's select with business_day(...) and source(...)
  expanded and, given `changed` (the event's transition rows as SQL), every `from changed` /
  `join changed` made a subquery in place. A subquery with a WITH clause is never pulled up
  into the query around it, so `with changed as (...)` would keep a Subquery Scan per
  mapping in the plan, and each plan node costs a single-row statement its executor
  start-up; a plain subquery is flattened. A mapping naming `changed` otherwise keeps the
  WITH clause (correct, a few plan nodes dearer).
#}
{% macro dashquery_capture_render(select, changed=none) -%}
    {%- set ns = namespace(sql=select) -%}
    {%- for expr in modules.re.findall('business_day\\(([^()]+)\\)', select) -%}
        {%- set ns.sql = ns.sql.replace('business_day(' ~ expr ~ ')', business_day(expr | trim)) -%}
    {%- endfor -%}
    {%- for table in modules.re.findall('source\\((\\w+)\\)', select) -%}
        {%- set ns.sql = ns.sql.replace('source(' ~ table ~ ')', dashquery_capture_source(table) | string) -%}
    {%- endfor -%}
    {%- if changed is not none -%}
        {%- set pattern = '\\b(from|join)\\s+changed\\b(?!\\s*\\.)(?!\\s+as\\b)' -%}
        {%- set places = modules.re.findall(pattern, ns.sql, flags=modules.re.IGNORECASE) | length -%}
        {%- set names = modules.re.findall('\\bchanged\\b(?!\\s*\\.)', ns.sql, flags=modules.re.IGNORECASE) | length -%}
        {%- if places > 0 and places == names -%}
            {%- set ns.sql = modules.re.sub(pattern, '\\1 (' ~ changed ~ ') as changed', ns.sql, flags=modules.re.IGNORECASE) -%}
        {%- else -%}
            {%- set ns.sql = 'with changed as (' ~ changed ~ ') ' ~ ns.sql -%}
        {%- endif -%}
    {%- endif -%}
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


{#
  dashquery_capture_groups: the entries of a table grouped by select (and, for an UPDATE, by
  on_update_of too: only there does it change `changed`), views in name order: blocks whose
  mappings are the same select (daily_orders and daily_order_customers read an order's own
  day) share one scan of the transition rows, cross joined with their views, instead of one
  UNION ALL branch each. A single-row statement's cost is mostly per plan node (measured,
  docs/BENCHMARKS.md), not per row.
#}
{% macro dashquery_capture_groups(entries, event) -%}
    {%- set groups = [] -%}
    {%- set index = {} -%}
    {%- for entry in entries -%}
        {%- set watched = entry.on_update_of if event == 'update' else [] -%}
        {%- set key = entry.select ~ '\n' ~ (watched | join(',')) -%}
        {%- if key not in index -%}
            {%- do index.update({key: groups | length}) -%}
            {%- do groups.append({'select': entry.select, 'on_update_of': watched, 'views': []}) -%}
        {%- endif -%}
        {%- do groups[index[key]]['views'].append(entry.view) -%}
    {%- endfor -%}
    {{ return(groups) }}
{%- endmacro %}


{# dashquery_capture_notify_enabled: var dashquery_capture_notify (default true). #}
{% macro dashquery_capture_notify_enabled() -%}
    {{ return(dashquery_bool_var('dashquery_capture_notify', true)) }}
{%- endmacro %}


{#
  dashquery_capture_insert: the one INSERT ... SELECT DISTINCT of an event; with notify, the
  organization ids it inserted into `organizations` (RETURNING + array_agg costs a CTE scan
  and a sort per statement: without notify the statement is the bare insert).
#}
{% macro dashquery_capture_insert(entries, event, notify) -%}
    {%- set groups = dashquery_capture_groups(entries, event) -%}
    {%- set changes = bookkeeping_relation('dashquery_changes').include(database=false) -%}
    {%- set insert -%}
            insert into {{ changes }} (organization_id, daily_view, business_day)
            select distinct groups.organization_id, groups.daily_view, groups.business_day
            from (
            {%- for group in groups %}
                {%- if group.views | length == 1 %}
                select {{ dashquery_literal(group.views[0]) }}::text as daily_view, g.organization_id, g.business_day::date as business_day
                from (
                    {{ dashquery_capture_render(group.select, dashquery_capture_changed(event, group.on_update_of)) }}
                ) as g (organization_id, business_day)
                {%- else %}
                select views.daily_view, g.organization_id, g.business_day::date as business_day
                from (
                    {{ dashquery_capture_render(group.select, dashquery_capture_changed(event, group.on_update_of)) }}
                ) as g (organization_id, business_day)
                cross join (values {% for view in group.views %}({{ dashquery_literal(view) }}::text){{ ', ' if not loop.last }}{% endfor %}) as views (daily_view)
                {%- endif %}
                {%- if not loop.last %}
                union all
                {%- endif %}
            {%- endfor %}
            ) as groups
            where groups.organization_id is not null and groups.business_day is not null
            on conflict do nothing
    {%- endset -%}
    {%- if notify %}
        with inserted as (
{{ insert }}
            returning organization_id
        )
        select array_agg(distinct inserted.organization_id) into organizations from inserted;
    {%- else %}
{{ insert }};
    {%- endif -%}
{%- endmacro %}


{#
  dashquery_capture_marked: the columns of a table named by any of its entries' on_update_of,
  sorted. A table with such columns also gets dq_capture_<table>_mark, a row-level AFTER
  UPDATE trigger WHEN (old.<columns>) IS DISTINCT FROM (new.<columns>): evaluated per row in
  the executor, it calls the function (which sets a transaction-local flag) only for a row
  that changed one of them. Without the flag the UPDATE branch leaves out the on_update_of
  entries, whose old/new pairing and dependant lookup (e.g. an order's completed jobs) were
  about a quarter of a single-row UPDATE's capture cost, and finds nothing in that case
  anyway: no row changed those columns. The flag stays on until the transaction ends (a
  nested statement's own capture cannot clear it for an outer one); a rolled-back
  subtransaction takes its flag with its rows. (PostgreSQL refuses UPDATE OF <columns> on
  a trigger with transition tables, hence the row trigger.)
#}
{% macro dashquery_capture_marked(entries) -%}
    {%- set columns = [] -%}
    {%- for entry in entries -%}
        {%- for column in entry.on_update_of if column not in columns -%}
            {%- do columns.append(column) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(columns | sort) }}
{%- endmacro %}


{# dashquery_capture_flag: the transaction-local setting the mark trigger sets for a table. #}
{% macro dashquery_capture_flag(table) -%}
    {{ dashquery_literal('dashquery.capture_' ~ table) }}
{%- endmacro %}


{#
  dashquery_capture_body: the PL/pgSQL body of a table's capture function. pg_notify is
  called as an assignment (a simple expression, evaluated without the SPI round trip a
  PERFORM costs), once when the ids fit one payload.
#}
{% macro dashquery_capture_body(table, entries) -%}
{%- set notify = dashquery_capture_notify_enabled() -%}
{%- set marked = dashquery_capture_marked(entries) -%}
{%- set unmarked = entries | rejectattr('on_update_of') | list -%}
declare
    flag text;
{%- if notify %}
    organizations uuid[];
    batch_start integer;
{%- endif %}
begin
{%- if marked %}
    if tg_level = 'ROW' then
        flag := set_config({{ dashquery_capture_flag(table) }}, 'on', true);
        return null;
    end if;
{%- endif %}
    if tg_op = 'INSERT' then
{{ dashquery_capture_insert(entries, 'new', notify) }}
    elsif tg_op = 'UPDATE' then
{%- if marked %}
        if current_setting({{ dashquery_capture_flag(table) }}, true) = 'on' then
{{ dashquery_capture_insert(entries, 'update', notify) }}
{%- if unmarked %}
        else
{{ dashquery_capture_insert(unmarked, 'update', notify) }}
{%- endif %}
        end if;
{%- else %}
{{ dashquery_capture_insert(entries, 'update', notify) }}
{%- endif %}
    else
{{ dashquery_capture_insert(entries, 'old', notify) }}
    end if;
{%- if notify %}
    if organizations is null then
        return null;
    end if;
    if cardinality(organizations) <= 200 then
        flag := pg_notify('dashquery_changes', array_to_string(organizations, ','));
        return null;
    end if;
    for batch_start in 1 .. cardinality(organizations) by 200 loop
        flag := pg_notify('dashquery_changes', array_to_string(organizations[batch_start:batch_start + 199], ','));
    end loop;
{%- endif %}
    return null;
end
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
