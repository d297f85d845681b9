{#
  dashboard_mv: the materialized relation of a daily view (or current_state) that readers
  never see missing, stale-without-knowing, or refreshed twice at once.

  Two refresh strategies, config `refresh_strategy` (issue 13 item 3; set per model in
  dbt_project.yml, var dashquery_refresh_strategy overrides it: a strategy or {model: one}):
    - 'incremental' (the default for every block): the relation is a TABLE with the unique
      index on unique_key. A refresh recomputes only the groups that dashquery_changes names
      for its daily view (the capture triggers write them in the changing transaction):
      delete their rows, insert their recomputation (LATERAL per group, so the group's
      organization_id/business_day reach the source tables' expression indexes as index
      conditions: checked with EXPLAIN ANALYZE at 10x for every block, see
      macros/incremental.sql), delete the change rows, write the watermark and run log.
      mv_order_customer_days' groups are customers (refresh_groups / refresh_rows macros).
      Only ROW EXCLUSIVE on the table: readers never wait.
    - 'concurrent': a materialized view, REFRESH MATERIALIZED VIEW CONCURRENTLY (recomputes
      all of history), then the change rows are deleted the same way.
  Both run in ONE transaction with ONE snapshot: SET TRANSACTION ISOLATION LEVEL REPEATABLE
  READ is its first statement, the watermark is now() (the transaction's start, before the
  snapshot: everything committed before it is in the data), and every statement after it
  sees that snapshot, so the DELETE of dashquery_changes removes exactly the change rows
  the recomputation saw; a change committed meanwhile keeps its row for the next refresh
  (under READ COMMITTED it would be consumed without being recomputed). Checked: REFRESH
  ... CONCURRENTLY inside a REPEATABLE READ transaction uses the transaction's snapshot (a
  row committed by another session after the snapshot is not in the refreshed view), so
  the concurrent strategy consumes its change rows under the same rule. The refresh
  statement reports transaction_isolation, shown in dbt's result line, e.g.
  "REFRESH incremental (repeatable read)"; the run fails if it is not repeatable read.
  (dbt-postgres sends no BEGIN after its first COMMIT on a connection: the refresh is one
  multi-statement query, which PostgreSQL runs as one transaction.)

  Capture off or not covering: when var dashquery_capture is false, or dashquery_deployment
  says capture is off or was switched on after this view's last watermark, the change
  table cannot say what changed since; the incremental strategy then recomputes every row
  (delete all + insert, same transaction and snapshot; the run says "recompute all"),
  never serving stale data silently.

  Measured at 10x (10 organizations x 730 days, dashquery seed --volume 10x, 2 shared
  cores under other load; run log duration_ms):
    - one changed order 100+ days back, dbt run --select mv_daily_orders:
        incremental 4.4-7.3 ms (median 5.4), concurrent 215-680 ms (median 234);
    - 1,000 changed rows (400 orders, 300 jobs, 300 opportunities over 200 days, all
      organizations), tag:15min, sum of its 5 views: incremental 1.03-1.32 s (orders
      63-89 ms, order_customer_days 364-409, energy 248-545, pipeline 76-128, jobs
      198-253), concurrent 6.3-8.9 s (orders 824-1199 ms, customer days 1134-2116, energy
      1762-2587, pipeline 1266-1561, jobs 1275-1714).
  So incremental for every block: cheaper by 40x after one change and 6x after 1,000, its
  cost grows with the change, REFRESH CONCURRENTLY's with the history; the same holds for
  mv_daily_warranty (orders' shape) and mv_current_state (per organization).

  What else it adds to dbt-postgres' built-in `materialized_view`:
    - a run log row per run, committed before the work starts: a failed run is marked by the
      on-run-end hook, a killed one by the next run of the same view;
    - a per-view advisory lock (session-level, see dashboard_mv_try_lock): a run that finds
      another refresh of the view under way skips (logged as 'skipped') rather than queueing
      a second recompute behind it;
    - a changed definition (hash of the compiled SQL, its unique key, the strategy and the
      upstream views' definitions), a changed strategy or --full-refresh is built under a
      temporary name (CREATE TABLE AS / CREATE MATERIALIZED VIEW AS, unique index) and
      swapped in within the same one-snapshot transaction, consuming every change row of
      its daily view that snapshot saw; the swap takes its locks with a short lock_timeout
      and retries (dashquery_retrying_on_lock), so readers never queue behind it for longer;
    - bookkeeping in the same transaction: its dashquery_relations row (kind
      'materialized_view' for either strategy: "the materialized relation"), and in its
      watermark row the daily views it selects from (upstream_views) with their recorded
      definition hashes (upstream_hash), which tell the read path when a daily view was
      redeployed without it; an incremental refresh adds its row delta to row_count
      instead of counting the table;
    - grants (dbt `grants` config + var dashquery_read_roles) and persisted docs.
  Config: unique_key (list, required), refresh_strategy, refresh_groups / refresh_rows
  (macro names, incremental only), rollups (true: month and year sums kept beside the
  table in <relation>__rollups, in the same transactions: macros/rollups.sql), spans (a
  datemultirange column: the first/last-day counts and gaps of its sets kept in
  <relation>__ends and <relation>__gaps, the same way: macros/spans.sql). Any other index is the read path's business: none are
  needed, so the `indexes` config is refused. Test-only: var dashquery_refresh_test_hook,
  SQL run inside the refresh transaction right after its snapshot is taken.
#}
{% materialization dashboard_mv, adapter='postgres' %}
    {%- set unique_key = config.require('unique_key') -%}
    {%- if unique_key is string or unique_key | length == 0 -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": unique_key must be a non-empty list of columns") }}
    {%- endif -%}
    {%- if config.get('indexes') -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": the indexes config is not supported (only unique_key)") }}
    {%- endif -%}
    {%- set strategy = config.get('refresh_strategy', 'concurrent') -%}
    {%- set override = var('dashquery_refresh_strategy', none) -%}
    {%- if override is mapping -%}
        {%- set strategy = override.get(model.alias, strategy) -%}
    {%- elif override -%}
        {%- set strategy = override -%}
    {%- endif -%}
    {%- if strategy not in ['incremental', 'concurrent'] -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": refresh_strategy must be 'incremental' or 'concurrent', not " ~ strategy) }}
    {%- endif -%}
    {%- set daily_relation = dashboard_mv_daily_view() -%}
    {%- if strategy == 'incremental' and daily_relation is none -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": the incremental strategy needs the daily view whose meta.dashquery.materialized names this model") }}
    {%- endif -%}
    {%- set relation_type = 'table' if strategy == 'incremental' else 'materialized_view' -%}
    {%- set target_relation = this.incorporate(type=relation_type) -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {#- month/year rollups (macros/rollups.sql): kept by the incremental strategy only; a
        leftover one (strategy or config switched) is dropped by the rebuild's swap -#}
    {%- set rollups_relation = dashboard_mv_rollups_relation(target_relation) -%}
    {%- set existing_rollups = load_cached_relation(rollups_relation) -%}
    {%- set rollups = rollups_relation if config.get('rollups', false) and strategy == 'incremental' else none -%}
    {%- set rollup_columns = dashboard_mv_rollup_columns(sql, unique_key) if rollups is not none else [] -%}
    {#- the spans of a multirange column (macros/spans.sql): the same rules as the rollups -#}
    {%- set spans_tables = dashboard_mv_spans_relations(target_relation) -%}
    {#- both or neither: one missing (dropped by hand) rebuilds, as a missing relation would -#}
    {%- set found_spans = [load_cached_relation(spans_tables.ends), load_cached_relation(spans_tables.gaps)] | reject('none') | list -%}
    {%- set spans_column = config.get('spans') if strategy == 'incremental' else none -%}
    {%- set spans = none -%}
    {%- if spans_column -%}
        {%- set spans = {'tables': spans_tables, 'entity': dashboard_mv_spans_entity(unique_key), 'column': spans_column} -%}
    {%- endif -%}
    {%- set companions = dashboard_mv_companions(rollups, spans_tables if spans is not none else none) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {%- set run_id = dashboard_mv_log_start(target_relation) -%}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if not dashboard_mv_try_lock(target_relation) -%}
        {{ log("dashboard_mv: " ~ target_relation ~ " is being refreshed by another run; skipped", info=true) }}
        {% call statement('main') -%}
            {{ dashboard_mv_log_skipped(run_id) }}
        {%- endcall %}
    {%- else -%}
        {%- set upstream_views = dashboard_mv_upstream_views() -%}
        {%- set definition_hash = dashboard_mv_definition_hash(sql, unique_key, upstream_views, strategy, rollups is not none, spans_column) -%}
        {%- if existing_relation is none -%}
            {%- set action = 'create' -%}
        {%- elif should_full_refresh()
            or existing_relation.type != relation_type
            or (rollups is none) != (existing_rollups is none)
            or (found_spans | length) != (0 if spans is none else 2)
            or dashboard_mv_stored_hash(target_relation) != definition_hash -%}
            {%- set action = 'rebuild' -%}
        {%- else -%}
            {%- set action = 'refresh' -%}
        {%- endif -%}
        {#- The checks above ran in a transaction of their own; end it, so the refresh
            statement below is the first of its transaction (dbt-postgres sends no BEGIN
            of its own after a COMMIT: the statement is one implicit transaction). -#}
        {{ adapter.commit() }}
        {%- set mode = action if action != 'refresh' else strategy -%}
        {% call statement('main', fetch_result=true) -%}
            {{ dashboard_mv_begin_snapshot(target_relation, daily_relation, mode == 'incremental') }}
            {{ var('dashquery_refresh_test_hook', '') }}
            {%- if mode == 'incremental' %}
            {{ dashboard_mv_incremental_refresh(target_relation, daily_relation, sql, unique_key, rollups, rollup_columns, spans) }}
            {%- elif mode == 'concurrent' %}
            {{ dashboard_mv_refresh(target_relation) }}
            {%- else %}
            {{ dashboard_mv_build_and_swap(target_relation, existing_relation, sql, unique_key, rollups, existing_rollups, rollup_columns, spans, found_spans | length > 0) }}
            {%- for granted in [target_relation] + companions %}
            {{ dashquery_new_relation_grants(granted) }}
            {%- endfor %}
            {%- endif %}
            {{ dashboard_mv_consume_changes(daily_relation) }}
            {{ dashboard_mv_finish(target_relation, run_id, action, definition_hash, upstream_views, row_delta=(mode == 'incremental')) }}
            {{ dashquery_record_relation(target_relation, 'materialized_view', definition_hash) }};
            select
                current_setting('transaction_isolation') as isolation,
                {{ "case when current_setting('dashquery.capture_covers')::boolean then 'incremental' else 'recompute all' end" if mode == 'incremental' else dashquery_literal(mode) }} as mode
        {%- endcall %}
        {%- set done = load_result('main').table.rows[0] -%}
        {#- a swapped-in relation starts without grants; a refreshed one keeps them -#}
        {%- for granted in [target_relation] + companions -%}
            {%- do apply_grants(granted, dashquery_grant_config(), should_revoke=(action == 'refresh')) -%}
        {%- endfor -%}
        {%- do persist_docs(target_relation, model) -%}
        {{ adapter.commit() }}
        {{ dashboard_mv_unlock(target_relation) }}
        {%- set how = '' if done['mode'] == action else ' ' ~ done['mode'] -%}
        {%- set message = action | upper ~ how ~ ' (' ~ done['isolation'] ~ ')' -%}
    {%- endif -%}
    {#- dbt prints the main statement's last command tag; say what happened instead
        (action, how, and the refresh transaction's isolation level). -#}
    {%- do store_raw_result(name='main', message=message | default('SKIPPED'), code='OK', rows_affected=-1) -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
