{#
  dashboard_mv: a materialized view that readers never see missing, stale-without-knowing,
  or refreshed twice at once. What it adds to dbt-postgres' built-in `materialized_view`:
    - later runs use REFRESH MATERIALIZED VIEW CONCURRENTLY (readers are never blocked); it
      needs the unique index built from config `unique_key`;
    - the watermark (when the refresh's snapshot read the tables) is written in the refresh's
      own transaction, so the read path's split day always matches the data;
    - a run log row per run, committed before the work starts: a failed run is marked by the
      on-run-end hook, a killed one by the next run of the same view;
    - a per-view advisory lock (session-level, see dashboard_mv_try_lock): a run that finds
      another refresh of the view under way skips (logged as 'skipped') rather than queueing
      a second full recompute behind it;
    - a changed definition (hash of the compiled SQL, its unique key and the upstream views'
      definitions) or --full-refresh is built under a temporary name and swapped in within
      one transaction; the swap takes its locks with a short lock_timeout and retries
      (dashquery_retrying_on_lock), so readers never queue behind it for longer than that;
    - bookkeeping in the same transaction: its dashquery_relations row, and in its watermark
      row the daily views it selects from (upstream_views) with their recorded definition
      hashes (upstream_hash), which tell the read path when a daily view was redeployed
      without it;
    - grants (dbt `grants` config + var dashquery_read_roles) and persisted docs applied in
      that transaction too, so a swapped-in relation is never readable ungranted.
  Config: unique_key (list, required). Any other index is the read path's business: none
  are needed, so the `indexes` config is refused.
#}
{% materialization dashboard_mv, adapter='postgres' %}
    {%- set unique_key = config.require('unique_key') -%}
    {%- if unique_key is string or unique_key | length == 0 -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": unique_key must be a non-empty list of columns") }}
    {%- endif -%}
    {%- if config.get('indexes') -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": the indexes config is not supported (only unique_key)") }}
    {%- endif -%}
    {%- set target_relation = this.incorporate(type='materialized_view') -%}
    {%- set existing_relation = load_cached_relation(this) -%}

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
        {%- set definition_hash = dashboard_mv_definition_hash(sql, unique_key, upstream_views) -%}
        {%- if existing_relation is none -%}
            {%- set action = 'create' -%}
        {%- elif should_full_refresh()
            or existing_relation.type != 'materialized_view'
            or dashboard_mv_stored_hash(target_relation) != definition_hash -%}
            {%- set action = 'rebuild' -%}
        {%- else -%}
            {%- set action = 'refresh' -%}
        {%- endif -%}
        {% call statement('main') -%}
            {{ dashboard_mv_start_watermark() }}
            {%- if action == 'refresh' %}
            {{ dashboard_mv_refresh(target_relation) }}
            {%- else %}
            {{ dashboard_mv_build_and_swap(target_relation, existing_relation, sql, unique_key) }}
            {%- endif %}
            {{ dashboard_mv_finish(target_relation, run_id, action, definition_hash, upstream_views) }}
            {{ dashquery_record_relation(target_relation, 'materialized_view', definition_hash) }};
        {%- endcall %}
        {#- a swapped-in relation starts without grants; a refreshed one keeps them -#}
        {%- do apply_grants(target_relation, dashquery_grant_config(), should_revoke=(action == 'refresh')) -%}
        {%- do persist_docs(target_relation, model) -%}
        {{ adapter.commit() }}
        {{ dashboard_mv_unlock(target_relation) }}
    {%- endif -%}
    {#- dbt prints the main statement's last command tag; say what happened instead. -#}
    {%- do store_raw_result(name='main', message=(action | default('skipped')) | upper, code='OK', rows_affected=-1) -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
