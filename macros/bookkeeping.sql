{#
  create_bookkeeping_tables (on-run-start): the tables dbt keeps beside the views.
  - dashquery_watermarks: one row per materialized view, written in the same transaction as
    its refresh; the read path splits every range at day(watermark).
  - dashquery_refresh_runs: every run of every view, skipped and failed ones included; what
    `dashquery status` reads.
  - dashquery_refresh_queue: views whose history changed (dashquery.notify), drained by
    `dashquery refresh --queued`.
  Created with IF NOT EXISTS so every run can call it; never dropped by dbt.
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
        last_error text
    );

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
        error text
    );

    create index if not exists dashquery_refresh_runs_view_started
    on {{ bookkeeping_relation('dashquery_refresh_runs') }} (view_name, started_at desc);

    create table if not exists {{ bookkeeping_relation('dashquery_refresh_queue') }} (
        view_name text primary key,
        requested_at timestamptz not null default now(),
        reason text
    );
{% endmacro %}


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
        {%- set message = (result.message or 'unknown error') | replace("'", "''") %}
        update {{ bookkeeping_relation('dashquery_refresh_runs') }}
        set status = 'failed', finished_at = clock_timestamp(), error = '{{ message }}',
            duration_ms = extract(epoch from clock_timestamp() - started_at) * 1000
        where invocation_id = '{{ invocation_id }}'
            and view_name = '{{ result.node.alias }}'
            and status = 'running';
        update {{ bookkeeping_relation('dashquery_watermarks') }}
        set last_failed_at = clock_timestamp(), last_error = '{{ message }}'
        where view_name = '{{ result.node.alias }}';
        {%- endfor %}
    {%- endif -%}
{% endmacro %}
