{#
  create_bookkeeping_tables (on-run-start): the tables dbt keeps beside the views.
  - dashquery_watermarks: one row per materialized view, written in the same transaction as
    its refresh; the read path splits every range at day(watermark).
  - dashquery_refresh_runs: every run of every view, skipped and failed ones included; what
    `dashquery status` reads. consumed_organizations / consumed_xact: the organizations whose
    change rows a run deleted, and its transaction, for `dashquery listen`'s poll (a refresh
    may consume a change before any poll saw it).
  - dashquery_refresh_queue: views whose history changed (dashquery.notify), drained by
    `dashquery refresh --queued`.
  - dashquery_relations: one row per relation built by dashboard_view / dashboard_mv, written
    in the transaction of its DDL (or refresh): its definition hash and the settings
    (DASHQUERY_TIMEZONE, DASHQUERY_SOURCE_SCHEMA) it was built with, which the read path
    checks against its own (settings drift, issue 11 item 2).
  - dashquery_watermarks.upstream_views / upstream_hash: the daily views an mv selects from
    and their definition hashes as of its last refresh; when they differ from the current
    ones, the mv holds data of an older definition (a partial deploy, item 3).
  - dashquery_deployment: one row, a random id for this database's deployment; part of the
    read path's cache identity. capture / capture_since: whether the change-capture triggers
    (models/capture, var dashquery_capture) are installed on every application table a block
    reads, and since when (null while off): set after the last trigger is in place, cleared
    before the first is removed, so `capture` true means every change since capture_since
    has its dashquery_changes rows.
  - dashquery_deployment.read_roles: the roles of var('dashquery_read_roles') as of the
    last run, so a role taken out of the var is revoked (dashquery_grant_read_access).
  - dashquery_changes: the (organization, daily view, business day) groups a committed
    change can affect, written by the capture triggers in the changing transaction
    (macros/capture/capture.sql) and consumed by the refresh of the relation built from
    daily_view. business_day is '-infinity' for current_state (per organization). The key
    starts with organization_id (a distribution key later) and ends with the writing
    transaction, so a change committed after a refresh's snapshot is always a new row.
  Created with IF NOT EXISTS (columns with ADD COLUMN IF NOT EXISTS, for existing
  deployments) so every run can call it; never dropped by dbt.
#}
{% macro create_bookkeeping_tables() %}
    create schema if not exists {{ adapter.quote(target.schema) }};

    create table if not exists {{ bookkeeping_relation('dashquery_watermarks') }} (
        view_name text primary key,
        watermark timestamptz not null,
        refreshed_at timestamptz not null,
        duration_ms double precision not null,
        row_count bigint not null,
        definition_hash text not null,
        cadence_minutes integer,
        last_failed_at timestamptz,
        last_error text,
        upstream_views text[],
        upstream_hash text
    );
    {{ dashquery_add_missing_columns('dashquery_watermarks', {'upstream_views': 'text[]', 'upstream_hash': 'text'}) }}

    create table if not exists {{ bookkeeping_relation('dashquery_refresh_runs') }} (
        run_id bigserial primary key,
        invocation_id text not null,
        view_name text not null,
        status text not null check (status in ('running', 'success', 'skipped', 'failed')),
        action text check (action in ('create', 'refresh', 'rebuild')),
        started_at timestamptz not null default clock_timestamp(),
        finished_at timestamptz,
        duration_ms double precision,
        watermark timestamptz,
        row_count bigint,
        error text,
        consumed_organizations uuid[],
        consumed_xact xid8
    );
    {{ dashquery_add_missing_columns('dashquery_refresh_runs', {'consumed_organizations': 'uuid[]', 'consumed_xact': 'xid8'}) }}

    {{ dashquery_add_missing_index('dashquery_refresh_runs', 'dashquery_refresh_runs_view_started', '(view_name, started_at desc)') }}
    {#- the listener's poll: runs that consumed change rows, by their transaction -#}
    {{ dashquery_add_missing_index('dashquery_refresh_runs', 'dashquery_refresh_runs_consumed', '(consumed_xact) where consumed_xact is not null') }}

    create table if not exists {{ bookkeeping_relation('dashquery_refresh_queue') }} (
        view_name text primary key,
        requested_at timestamptz not null default now(),
        reason text
    );

    create table if not exists {{ bookkeeping_relation('dashquery_relations') }} (
        relation_name text primary key,
        kind text not null check (kind in ('view', 'materialized_view')),
        definition_hash text not null,
        timezone text not null,
        source_schema text not null,
        built_at timestamptz not null
    );

    create table if not exists {{ bookkeeping_relation('dashquery_deployment') }} (
        deployment_id uuid primary key,
        created_at timestamptz not null,
        capture boolean not null default false,
        capture_since timestamptz,
        read_roles text[] not null default '{}'
    );
    {{ dashquery_add_missing_columns('dashquery_deployment', {'capture': 'boolean not null default false', 'capture_since': 'timestamptz', 'read_roles': "text[] not null default '{}'"}) }}
    {#- one row ever: the unique index on a constant makes a racing second insert a no-op -#}
    {{ dashquery_add_missing_index('dashquery_deployment', 'dashquery_deployment_one_row', '((true))', unique=true) }}
    insert into {{ bookkeeping_relation('dashquery_deployment') }} (deployment_id, created_at)
    select gen_random_uuid(), now()
    where not exists (select 1 from {{ bookkeeping_relation('dashquery_deployment') }})
    on conflict do nothing;

    create table if not exists {{ bookkeeping_relation('dashquery_changes') }} (
        organization_id uuid not null,
        daily_view text not null,
        business_day date not null,
        xact_id xid8 not null default pg_current_xact_id(),
        changed_at timestamptz not null default clock_timestamp(),
        primary key (organization_id, daily_view, business_day, xact_id)
    );
    {{ dashquery_add_missing_index('dashquery_changes', 'dashquery_changes_daily_view', '(daily_view)') }}

    {{ dashquery_grant_read_access(['dashquery_watermarks', 'dashquery_refresh_runs',
        'dashquery_refresh_queue', 'dashquery_relations', 'dashquery_deployment',
        'dashquery_changes']) }}
{% endmacro %}


{#
  dashquery_add_missing_index: CREATE [UNIQUE] INDEX <index> ON a bookkeeping table
  <definition> (the column list and an optional WHERE) when the index is missing, and
  nothing at all otherwise: CREATE INDEX IF NOT EXISTS takes its SHARE lock on the table,
  which blocks writers (refreshes logging their runs, capture triggers), before it finds
  the index exists, so every run's on-run-start would queue behind them. The one real
  CREATE runs under dashquery_retrying_on_lock.
  dashquery_changes (daily_view): the refresh of a block reads and deletes its daily view's
  change rows; by the primary key (organization first) that is a scan of the whole table,
  and a bulk load leaves the table hundreds of thousands of rows long until VACUUM can
  truncate it, which it rarely can while writers keep adding rows at its end. Measured at
  100x after one bulk load: three scans of 2,978 pages, about 1 ms each, in every block's
  refresh; no difference in a single-row UPDATE's latency (pgbench, interleaved).
#}
{% macro dashquery_add_missing_index(table, index, definition, unique=false) -%}
    {%- if execute -%}
        {%- set relation = bookkeeping_relation(table) -%}
        {%- set found = run_query("select to_regclass(" ~ dashquery_literal(
            adapter.quote(relation.schema) ~ '.' ~ adapter.quote(index)) ~ ") is not null") -%}
        {%- if not found.columns[0].values()[0] -%}
            {{ dashquery_retrying_on_lock(['create ' ~ ('unique ' if unique else '') ~ 'index if not exists '
                ~ adapter.quote(index) ~ ' on ' ~ relation ~ ' ' ~ definition]) }};
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#
  dashquery_add_missing_columns: ALTER TABLE ... ADD COLUMN for the columns an existing
  deployment's table lacks, and nothing at all when none is missing. Not a plain ADD COLUMN IF
  NOT EXISTS: that takes an ACCESS EXCLUSIVE lock even when every column exists, so each
  run's on-run-start would queue behind any long reader of the table (the read path reads
  dashquery_watermarks in every statement) and every reader behind it. The one real ALTER
  runs under dashquery_retrying_on_lock.
#}
{% macro dashquery_add_missing_columns(table, columns) -%}
    {%- if execute -%}
        {%- set relation = bookkeeping_relation(table) -%}
        {%- set found = run_query(
            "select attname from pg_catalog.pg_attribute where attrelid = to_regclass("
            ~ dashquery_literal(relation.include(database=false)) ~ ") and attnum > 0 and not attisdropped") -%}
        {%- set existing = found.columns[0].values() | list -%}
        {%- set adds = [] -%}
        {%- for name, type in columns.items() if existing and name not in existing -%}
            {%- do adds.append('add column if not exists ' ~ adapter.quote(name) ~ ' ' ~ type) -%}
        {%- endfor -%}
        {%- if adds -%}
            {{ dashquery_retrying_on_lock(['alter table ' ~ relation ~ ' ' ~ adds | join(', ')]) }};
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{# bookkeeping_relation: a bookkeeping table in the target schema (DASHQUERY_SCHEMA). #}
{% macro bookkeeping_relation(name) -%}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier=name, type='table')) }}
{%- endmacro %}


{#
  log_failed_refreshes (on-run-end): a failed refresh rolls back its own transaction, run
  log row update included, so the failure is recorded here from dbt's results instead. The
  watermark row keeps its last good watermark and gets last_failed_at, which tells the read
  path to read that block live until a refresh succeeds again.
#}
{% macro log_failed_refreshes(results) %}
    {%- set failed = [] -%}
    {%- for result in results
        if result.node.config.materialized == 'dashboard_mv' and result.status == 'error' -%}
        {%- do failed.append(result) -%}
    {%- endfor -%}
    {%- if failed | length == 0 -%}
        select 1
    {%- else -%}
        {%- for result in failed %}
        {%- set message = dashquery_literal(result.message or 'unknown error') %}
        update {{ bookkeeping_relation('dashquery_refresh_runs') }}
        set status = 'failed', finished_at = clock_timestamp(), error = {{ message }},
            duration_ms = extract(epoch from clock_timestamp() - started_at) * 1000
        where invocation_id = {{ dashquery_literal(invocation_id) }}
            and view_name = {{ dashquery_literal(result.node.alias) }}
            and status = 'running';
        update {{ bookkeeping_relation('dashquery_watermarks') }}
        set last_failed_at = clock_timestamp(), last_error = {{ message }}
        where view_name = {{ dashquery_literal(result.node.alias) }};
        {%- endfor %}
    {%- endif -%}
{% endmacro %}


{#
  dashquery_record_relation: upsert a relation's dashquery_relations row; call it in the
  transaction of the relation's DDL or refresh, so the row always describes what readers see.
  built_at moves only when the definition or the settings change.
#}
{% macro dashquery_record_relation(relation, kind, definition_hash) %}
    insert into {{ bookkeeping_relation('dashquery_relations') }} as r
        (relation_name, kind, definition_hash, timezone, source_schema, built_at)
    values (
        {{ dashquery_literal(relation.identifier) }}, {{ dashquery_literal(kind) }},
        {{ dashquery_literal(definition_hash) }}, {{ dashquery_literal(dashquery_timezone()) }},
        {{ dashquery_literal(dashquery_source_schema()) }}, clock_timestamp()
    )
    on conflict (relation_name) do update set
        kind = excluded.kind,
        definition_hash = excluded.definition_hash,
        timezone = excluded.timezone,
        source_schema = excluded.source_schema,
        built_at = excluded.built_at
    where (r.kind, r.definition_hash, r.timezone, r.source_schema)
        is distinct from (excluded.kind, excluded.definition_hash, excluded.timezone, excluded.source_schema)
{% endmacro %}


{# dashquery_stored_definition_hash: the definition hash recorded for a relation, or none. #}
{% macro dashquery_stored_definition_hash(relation, kind) %}
    {% call statement('dashquery_stored_definition_hash', fetch_result=true) -%}
        select max(definition_hash) from {{ bookkeeping_relation('dashquery_relations') }}
        where relation_name = {{ dashquery_literal(relation.identifier) }}
            and kind = {{ dashquery_literal(kind) }}
    {%- endcall %}
    {{ return(load_result('dashquery_stored_definition_hash').table.columns[0].values()[0]) }}
{% endmacro %}
