{#
  The steps of the dashboard_mv materialization, one statement kind per macro. Identifiers
  are composed by dbt's Relation objects or adapter.quote; every name spliced into a string
  literal goes through dashquery_literal (a schema may be called `Dash Views` or `O'Brien`).
#}

{# dashboard_mv_log_start: a 'running' row, committed at once so even a killed run leaves a trace. #}
{% macro dashboard_mv_log_start(relation) %}
    {% call statement('dashboard_mv_log_start', fetch_result=true) -%}
        insert into {{ bookkeeping_relation('dashquery_refresh_runs') }}
            (invocation_id, view_name, status)
        values ({{ dashquery_literal(invocation_id) }}, {{ dashquery_literal(relation.identifier) }}, 'running')
        returning run_id
    {%- endcall %}
    {{ adapter.commit() }}
    {{ return(load_result('dashboard_mv_log_start').table.columns[0].values()[0]) }}
{% endmacro %}


{#
  dashboard_mv_try_lock / dashboard_mv_unlock: a session-level advisory lock per view, held
  from before the refresh until after its commit. Session-level, not transaction-level:
  dbt-postgres runs each statement call in its own transaction, so a transaction lock would
  be gone before the refresh starts. A run that dies releases it with its session; a run
  whose refresh fails keeps it until dbt exits, seconds later.
#}
{#- The key's text is the raw 'dashquery:<schema>.<view>' (status.py computes the same). -#}
{% macro dashboard_mv_lock_key(relation) -%}
    hashtextextended({{ dashquery_literal('dashquery:' ~ relation.schema ~ '.' ~ relation.identifier) }}, 0)
{%- endmacro %}

{% macro dashboard_mv_try_lock(relation) %}
    {% call statement('dashboard_mv_try_lock', fetch_result=true) -%}
        select pg_try_advisory_lock({{ dashboard_mv_lock_key(relation) }})
    {%- endcall %}
    {{ return(load_result('dashboard_mv_try_lock').table.columns[0].values()[0]) }}
{% endmacro %}

{% macro dashboard_mv_unlock(relation) %}
    {% call statement('dashboard_mv_unlock') -%}
        select pg_advisory_unlock({{ dashboard_mv_lock_key(relation) }})
    {%- endcall %}
{% endmacro %}


{% macro dashboard_mv_log_skipped(run_id) %}
    update {{ bookkeeping_relation('dashquery_refresh_runs') }}
    set status = 'skipped', finished_at = clock_timestamp(),
        duration_ms = extract(epoch from clock_timestamp() - started_at) * 1000
    where run_id = {{ run_id }}
{% endmacro %}


{#
  dashboard_mv_upstream_views: the relations of our views (dashboard_view) that this model
  reads, directly or through other such views: its daily view and the staging views under
  it. A changed stg_orders changes what mv_daily_orders must hold although daily_orders'
  own SQL is the same, so the hash and upstream_hash cover every such ancestor. Models with
  meta dashquery_upstream false (the index and capture installers, which a block only runs
  after) are not data it reads: neither listed nor walked through.
  (Jinja has no while loop: a bounded walk over the graph, breadth first.)
#}
{% macro dashboard_mv_upstream_views() %}
    {%- set seen = [] -%}
    {%- set upstream = [] -%}
    {%- set frontier = model.depends_on.nodes | list -%}
    {%- for _ in range(graph.nodes | length) if frontier -%}
        {%- set next = [] -%}
        {%- for node_id in frontier if node_id in graph.nodes and node_id not in seen -%}
            {%- do seen.append(node_id) -%}
            {%- set node = graph.nodes[node_id] -%}
            {%- if node.config.materialized == 'dashboard_view'
                and node.config.meta.get('dashquery_upstream', true) -%}
                {%- do upstream.append(api.Relation.create(
                    database=node.database, schema=node.schema, identifier=node.alias, type='view')) -%}
                {%- do next.extend(node.depends_on.nodes) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do frontier.clear() -%}
        {%- do frontier.extend(next) -%}
    {%- endfor -%}
    {{ return(upstream | sort(attribute='identifier')) }}
{% endmacro %}


{#
  dashboard_mv_definition_hash: what decides "rebuild" over "refresh". The compiled SQL is
  mostly `select * from daily_x`, so the upstream views' current definitions are hashed too:
  changing a daily view's logic or columns rebuilds the materialized view that reads it.
  The names given to to_regclass are quoted identifiers (a schema such as `Dash Views`).
#}
{% macro dashboard_mv_definition_hash(sql, unique_key, upstream_views, strategy='concurrent', rollups=false, spans=none) %}
    {%- set names = [] -%}
    {%- for view in upstream_views -%}
        {%- do names.append(view.include(database=false) | string) -%}
    {%- endfor -%}
    {#- the strategy (and the incremental one's group macros) is part of the definition:
        switching it rebuilds beside the old relation and swaps. 'concurrent' hashes as
        before the strategies existed, so an upgrade rebuilds nothing it need not. -#}
    {%- set own_text = sql ~ '|' ~ unique_key | join(',') -%}
    {%- if strategy != 'concurrent' -%}
        {%- set own_text = own_text ~ '|' ~ strategy ~ '|' ~ config.get('refresh_groups', '') ~ '|' ~ config.get('refresh_rows', '') -%}
    {%- endif -%}
    {%- if rollups -%}
        {%- set own_text = own_text ~ '|rollups' -%}
    {%- endif -%}
    {%- if spans -%}
        {%- set own_text = own_text ~ '|spans ' ~ spans -%}
    {%- endif -%}
    {%- set own = dashquery_definition_hash(own_text) -%}
    {% call statement('dashboard_mv_definition_hash', fetch_result=true) -%}
        select md5({{ dashquery_literal(own) }} || coalesce(string_agg(pg_get_viewdef(to_regclass(name)::oid, true), '|' order by name), ''))
        from unnest({{ dashquery_text_array(names) }}) as name
        where to_regclass(name) is not null
    {%- endcall %}
    {{ return(load_result('dashboard_mv_definition_hash').table.columns[0].values()[0]) }}
{% endmacro %}


{% macro dashboard_mv_stored_hash(relation) %}
    {% call statement('dashboard_mv_stored_hash', fetch_result=true) -%}
        select max(definition_hash) from {{ bookkeeping_relation('dashquery_watermarks') }}
        where view_name = {{ dashquery_literal(relation.identifier) }}
    {%- endcall %}
    {{ return(load_result('dashboard_mv_stored_hash').table.columns[0].values()[0]) }}
{% endmacro %}


{#
  dashboard_mv_begin_snapshot: the first statements of the refresh's transaction: SET
  TRANSACTION ISOLATION LEVEL REPEATABLE READ, then the watermark = now(), the transaction's
  start. The snapshot is taken by that first query, after now(), so everything committed
  before the watermark is in it, and every later statement of the refresh (recompute,
  consume the change rows, watermark, run log) uses that same snapshot: a change committed
  meanwhile is neither recomputed nor consumed. An incremental refresh reads
  dashquery.capture_covers in it too (dashboard_mv_capture_covers), which picks the branch
  of dashboard_mv_incremental_refresh, with jit off: its statements are index probes per
  organization, and their estimated costs over a whole history pass jit_above_cost at 100x,
  where PostgreSQL JIT-compiled them for ~250 ms per view (docs/BENCHMARKS.md, 100x vs
  100x_jit_off). Kept short: a rebuild's
  swap must stay within pg_stat_activity's first 1024 characters (track_activity_query_size),
  where the lock-queue test looks for it. The refresh statement's last SELECT reports
  transaction_isolation, which the materialization puts in dbt's result message.
#}
{% macro dashboard_mv_begin_snapshot(relation, daily_relation, incremental) -%}
    set transaction isolation level repeatable read;
    {% if incremental -%}
    set local jit = off;
    {% endif -%}
    select set_config('dashquery.watermark', now()::text, true)
    {%- if incremental -%}
    , set_config('dashquery.capture_covers', ({{ dashboard_mv_capture_covers(relation, daily_relation) }})::text, true)
    {%- endif -%};
{%- endmacro %}


{% macro dashboard_mv_refresh(relation) %}
    refresh materialized view concurrently {{ relation }};
{% endmacro %}


{#
  dashboard_mv_companions: the tables kept beside the relation in its transactions (its
  rollups, the two spans tables; none given, none kept), which are analyzed and granted
  like it.
#}
{% macro dashboard_mv_companions(rollups, spans_tables) %}
    {{ return(([rollups] if rollups is not none else [])
        + ([spans_tables.ends, spans_tables.gaps] if spans_tables is not none else [])) }}
{% endmacro %}


{#
  dashboard_mv_build_and_swap: build the new definition beside the old one, then drop the
  old and rename the new in this same transaction. Readers keep using the old relation
  until commit and then see the new one; the relation is never missing. The old one is
  dropped without CASCADE: nothing should depend on it, and if something does we fail loudly.
  The swap (the only step that needs the old relation's ACCESS EXCLUSIVE lock) runs under
  dashquery_retrying_on_lock. The unique index is written by hand rather than with dbt's
  get_create_index_sql, which names indexes by a hash: the read path and the docs know it
  as <view>__key.
#}
{% macro dashboard_mv_build_and_swap(relation, existing_relation, sql, unique_key, rollups=none, existing_rollups=none, rollup_columns=[], spans=none, spans_exist=false) %}
    {%- set building = relation.incorporate(path={'identifier': relation.identifier ~ '__dq_new'}) -%}
    {%- set building_key = api.Relation.create(database=relation.database, schema=relation.schema, identifier=relation.identifier ~ '__dq_new_key') -%}
    {%- set columns = [] -%}
    {%- for column in unique_key -%}
        {%- do columns.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set swap = [] -%}
    {%- if existing_relation is not none -%}
        {%- do swap.append(dashquery_drop_sql(existing_relation, if_exists=false)) -%}
    {%- endif -%}
    {%- do swap.append(get_rename_sql(building, adapter.quote(relation.identifier)) | trim) -%}
    {%- do swap.append('alter index ' ~ building_key ~ ' rename to ' ~ adapter.quote(relation.identifier ~ '__key')) -%}
    {%- if existing_rollups is not none -%}
        {%- do swap.append(dashquery_drop_sql(existing_rollups, if_exists=false)) -%}
    {%- endif -%}
    {%- if rollups is not none -%}
        {%- set building_rollups = rollups.incorporate(path={'identifier': rollups.identifier ~ '__dq_new'}) -%}
        {%- do swap.append(get_rename_sql(building_rollups, adapter.quote(rollups.identifier)) | trim) -%}
        {%- do swap.append('alter index ' ~ building_rollups.incorporate(path={'identifier': building_rollups.identifier ~ '_key'}) ~ ' rename to ' ~ adapter.quote(rollups.identifier ~ '__key')) -%}
    {%- endif -%}
    {%- set spans_tables = dashboard_mv_spans_relations(relation) -%}
    {%- set building_spans = dashboard_mv_spans_relations(building) -%}
    {%- if spans_exist -%}
        {%- do swap.append(dashquery_drop_sql(spans_tables.ends)) -%}
        {%- do swap.append(dashquery_drop_sql(spans_tables.gaps)) -%}
    {%- endif -%}
    {%- if spans is not none -%}
        {%- do swap.extend(dashboard_mv_spans_swap(spans_tables, building_spans)) -%}
    {%- endif -%}
    {{ dashquery_drop_sql(building) }};
    create {{ 'table' if relation.type == 'table' else 'materialized view' }} {{ building }} as
    {{ sql }}
    ;
    create unique index {{ adapter.quote(building_key.identifier) }}
    on {{ building }} ({{ columns | join(', ') }});
    {%- if rollups is not none %}
    {{ dashboard_mv_rollups_build(building_rollups, building, rollup_columns) }}
    {%- endif %}
    {%- if spans is not none %}
    {{ dashboard_mv_spans_build(building_spans, building, spans.entity, spans.column) }}
    {%- endif %}
    {{ dashquery_retrying_on_lock(swap) }};
    {%- for table in [relation] + dashboard_mv_companions(rollups, spans_tables if spans is not none else none) %}
    analyze {{ table }};
    {%- endfor %}
{% endmacro %}


{#
  dashboard_mv_finish: the watermark and the run's success, in the refresh's transaction.
  Earlier 'running' rows of this view can only be runs that died (we hold its lock), so
  they are closed as failed here. upstream_hash is read from dashquery_relations by this
  transaction, so it names exactly the daily view definitions the refreshed data came from
  (the read path compares it with the same expression evaluated now).
#}
{% macro dashboard_mv_finish(relation, run_id, action, definition_hash, upstream_views, row_delta=false) %}
    {%- set cadences = var('dashquery_cadence_minutes', {}) -%}
    {%- set cadence = [] -%}
    {%- for tag in config.get('tags', []) if tag in cadences -%}
        {%- do cadence.append(cadences[tag]) -%}
    {%- endfor -%}
    {%- set watermark = "current_setting('dashquery.watermark')::timestamptz" -%}
    {%- set view_name = dashquery_literal(relation.identifier) -%}
    {%- set names = [] -%}
    {%- for view in upstream_views -%}
        {%- do names.append(view.identifier) -%}
    {%- endfor -%}
    insert into {{ bookkeeping_relation('dashquery_watermarks') }} as w
        (view_name, watermark, refreshed_at, duration_ms, row_count, definition_hash,
         cadence_minutes, last_failed_at, last_error, upstream_views, upstream_hash)
    select
        {{ view_name }}, {{ watermark }}, clock_timestamp(),
        extract(epoch from clock_timestamp() - {{ watermark }}) * 1000,
        {% if row_delta -%}
        {#- an incremental refresh counts its delta, not the whole relation -#}
        case when current_setting('dashquery.capture_covers')::boolean then
            (select row_count + current_setting('dashquery.row_delta')::bigint
             from {{ bookkeeping_relation('dashquery_watermarks') }} where view_name = {{ view_name }})
        else (select count(*) from {{ relation }}) end,
        {%- else -%}
        (select count(*) from {{ relation }}),
        {%- endif %} {{ dashquery_literal(definition_hash) }},
        {{ cadence | first if cadence else 'null' }}, null, null,
        upstream.views,
        (
            select string_agg(r.definition_hash, ',' order by r.relation_name)
            from {{ bookkeeping_relation('dashquery_relations') }} as r
            where r.relation_name = any(upstream.views)
        )
    from (select {{ dashquery_text_array(names) }} as views) as upstream
    on conflict (view_name) do update set
        watermark = excluded.watermark,
        refreshed_at = excluded.refreshed_at,
        duration_ms = excluded.duration_ms,
        row_count = excluded.row_count,
        definition_hash = excluded.definition_hash,
        cadence_minutes = excluded.cadence_minutes,
        last_failed_at = null,
        last_error = null,
        upstream_views = excluded.upstream_views,
        upstream_hash = excluded.upstream_hash;
    update {{ bookkeeping_relation('dashquery_refresh_runs') }} as r
    set status = 'success', action = '{{ action }}', finished_at = w.refreshed_at,
        duration_ms = w.duration_ms, watermark = w.watermark, row_count = w.row_count,
        consumed_organizations = consumed.organizations,
        consumed_xact = case when cardinality(consumed.organizations) > 0 then pg_current_xact_id() end
    from (
        select coalesce(nullif(current_setting('dashquery.consumed', true), ''), '{}')::uuid[]
            as organizations
    ) as consumed, {{ bookkeeping_relation('dashquery_watermarks') }} as w
    where r.run_id = {{ run_id }} and w.view_name = {{ view_name }};
    update {{ bookkeeping_relation('dashquery_refresh_runs') }}
    set status = 'failed', finished_at = clock_timestamp(),
        error = 'interrupted: the run ended without committing (killed or lost connection)'
    where view_name = {{ view_name }} and status = 'running' and run_id < {{ run_id }};
{% endmacro %}
