{#
  The incremental refresh of dashboard_mv (refresh_strategy 'incremental', issue 13 item 3):
  the materialized relation is a TABLE with the unique index on unique_key; a refresh
  replaces only the groups the capture triggers recorded as changed in dashquery_changes.

  Names the SQL below relies on:
    - dq_changed_days (organization_id, business_day): the distinct change rows of this
      relation's daily view that the refresh's snapshot sees;
    - dq_groups (the unique_key columns): the groups to replace, from config
      `refresh_groups` (the name of a macro; default dashquery_refresh_groups_default);
    - the groups' new rows, from config `refresh_rows` (a macro name; default
      dashquery_refresh_rows_default), which may read {{ relation }} as it was before this
      statement (a data-modifying CTE's effects are invisible to the rest of its statement).
  Each macro is called as macro(relation, daily_relation, sql, unique_key).
#}

{#
  dashboard_mv_daily_view: the daily view (a dashboard_view parent) this model materializes,
  the one whose meta.dashquery.materialized names it; its name is the daily_view of the
  change rows the refresh consumes. none when the model has no such parent.
#}
{% macro dashboard_mv_daily_view() %}
    {%- for node_id in model.depends_on.nodes if node_id in graph.nodes -%}
        {%- set node = graph.nodes[node_id] -%}
        {%- set meta = (node.config.get('meta') or {}).get('dashquery') or {} -%}
        {%- if node.config.materialized == 'dashboard_view' and meta.get('materialized') == model.alias -%}
            {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias, type='view')) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{% endmacro %}


{#
  dashboard_mv_consume_changes: delete every change row of the daily view that this
  transaction's snapshot sees. The refresh runs under REPEATABLE READ, so this DELETE sees
  exactly the rows the recomputation saw: a change committed after the snapshot is
  invisible to it and stays for the next refresh (its key ends with its own xact_id, so it
  is always a new row, never one of ours). The organizations it deleted go into the run's
  record (dashboard_mv_finish: consumed_organizations), for the listener's poll.
#}
{% macro dashboard_mv_consume_changes(daily_relation) -%}
    {%- if daily_relation is not none %}
    with dq_consumed as (
        delete from {{ bookkeeping_relation('dashquery_changes') }}
        where daily_view = {{ dashquery_literal(daily_relation.identifier) }}
        returning organization_id
    )

    select set_config(
        'dashquery.consumed',
        coalesce((select array_agg(distinct organization_id) from dq_consumed), '{}')::text,
        true
    );
    {%- endif %}
{%- endmacro %}


{#
  dashboard_mv_capture_covers: true when the refresh should be incremental: every change
  committed since this view's last watermark has its change rows (capture is on,
  dashquery_deployment.capture, and has been since before that watermark, capture_since <=
  watermark, and the dbt var says so too), and they are few enough. Evaluated in the
  refresh's snapshot. Otherwise the incremental strategy recomputes everything (never stale
  silently). Var dashquery_recompute_all forces that: `dashquery refresh --queued` sets it,
  because the changes notify() reports are the ones the triggers did not record (capture off,
  or writes that bypass triggers).
  "Few enough": at most max(dashquery_incremental_max_rows, dashquery_incremental_max_share
  x the relation's rows) change rows. Each changed group costs an index-probing recompute
  (~5 ms per group at 100x), a full recompute a scan of the history (~6 s per view at 100x):
  after a bulk load of 100k rows (272k change rows) the incremental path took 33-55 s where
  recomputing all takes seconds (docs/BENCHMARKS.md), so a large change set takes that path.
#}
{% macro dashboard_mv_capture_covers(relation, daily_relation) -%}
    {%- if dashquery_capture_enabled() and not var('dashquery_recompute_all', false) -%}
    {%- set max_rows = var('dashquery_incremental_max_rows', 2000) | int -%}
    {%- set max_share = var('dashquery_incremental_max_share', 0.02) | float -%}
    coalesce((
        select d.capture and d.capture_since <= w.watermark
            and (
                select count(*) from {{ bookkeeping_relation('dashquery_changes') }} as c
                where c.daily_view = {{ dashquery_literal(daily_relation.identifier) }}
            ) <= greatest({{ max_rows }}, ({{ max_share }} * w.row_count)::bigint)
        from {{ bookkeeping_relation('dashquery_deployment') }} as d
        cross join {{ bookkeeping_relation('dashquery_watermarks') }} as w
        where w.view_name = {{ dashquery_literal(relation.identifier) }}
    ), false)
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}


{#
  dashboard_mv_incremental: one statement. The delete runs before the insert (the insert's
  one-time filter reads the delete's result, so the delete finishes first); the rows of the
  replaced groups are the only ones touched, under ROW EXCLUSIVE: readers never wait.
  Every per-group lookup is a LATERAL subquery with OFFSET 0: the planner cannot flatten it
  into a join with the whole relation or daily view (it estimates a CTE at 200 rows and
  would otherwise pick a merge or hash join over all of history: 230 ms instead of under
  1 ms at 10x for one changed day), so each group's key reaches the indexes as a parameter.
  The old rows are deleted by ctid, found through the unique key index. The
  row count change is kept in dashquery.row_delta for the watermark row.
#}
{% macro dashboard_mv_incremental(relation, daily_relation, sql, unique_key, spans=none) -%}
    {%- set groups_macro = context[config.get('refresh_groups', 'dashquery_refresh_groups_default')] -%}
    {%- set rows_macro = context[config.get('refresh_rows', 'dashquery_refresh_rows_default')] -%}
    {%- set matches = [] -%}
    {%- for column in unique_key -%}
        {%- do matches.append('dq_old.' ~ adapter.quote(column) ~ ' = dq_groups.' ~ adapter.quote(column)) -%}
    {%- endfor -%}
    with

    dq_changed_days as (
        select distinct organization_id, business_day
        from {{ bookkeeping_relation('dashquery_changes') }}
        where daily_view = {{ dashquery_literal(daily_relation.identifier) }}
    ),

    dq_groups as materialized (
        {{ groups_macro(relation, daily_relation, sql, unique_key) }}
    ),

    dq_deleted as (
        delete from {{ relation }}
        where ctid = any(array(
            select dq_old.ctid
            from dq_groups
            cross join lateral (
                select ctid from {{ relation }} as dq_old
                where {{ matches | join(' and ') }}
                offset 0
            ) as dq_old
        ))
        returning {{ '*' if spans is not none else '1' }}
    ),

    dq_inserted as (
        insert into {{ relation }}
        select dq_rows.* from (
            {{ rows_macro(relation, daily_relation, sql, unique_key) }}
        ) as dq_rows
        where (select count(*) from dq_deleted) >= 0
        returning {{ '*' if spans is not none else '1' }}
    ){%- if spans is not none %},

    {{ dashboard_mv_spans_changed(spans.tables, spans.entity, spans.column) }}
    {%- endif %}

    select set_config(
        'dashquery.row_delta',
        ((select count(*) from dq_inserted) - (select count(*) from dq_deleted))::text,
        true
    )
{%- endmacro %}


{#
  dashboard_mv_recompute_all: the incremental strategy's refresh when capture does not cover
  the interval since the last watermark (capture off, or switched on since): every row
  replaced, in the same one-snapshot transaction (DELETE, not TRUNCATE: readers keep reading
  the old rows until commit, and wait for nothing). Returns the statements.
#}
{% macro dashboard_mv_recompute_all(relation, sql) -%}
    {{ return([
        'delete from ' ~ relation,
        'insert into ' ~ relation ~ ' select * from (' ~ sql ~ '\n) as dq_all',
    ]) }}
{%- endmacro %}


{#
  dashboard_mv_incremental_refresh: the incremental strategy's whole recompute, one DO
  block in the refresh's transaction and snapshot. Which branch runs is decided there, by
  dashquery.capture_covers (dashboard_mv_capture_covers, evaluated in the same snapshot), and
  PL/pgSQL plans a statement only when it runs it: the branch not taken costs nothing.
  Before, both branches were plain statements behind one-time filters, and the recompute of
  all history was planned on every refresh (1-5 ms per view at 10x: most of a one-row
  refresh) and, at 100x, JIT-compiled. Each step is EXECUTEd from a dollar-quoted string:
  planned once, for this run, like any one-shot statement.
#}
{% macro dashboard_mv_incremental_refresh(relation, daily_relation, sql, unique_key, rollups, rollup_columns, spans=none) -%}
    {%- set changed = [dashboard_mv_incremental(relation, daily_relation, sql, unique_key, spans) | trim] -%}
    {%- set everything = dashboard_mv_recompute_all(relation, sql) -%}
    {%- if spans is not none -%}
        {%- do everything.extend(dashboard_mv_spans_all(relation, spans.tables, spans.entity, spans.column)) -%}
    {%- endif -%}
    {%- if rollups is not none -%}
        {%- do changed.extend(dashboard_mv_rollups_changed(relation, rollups, daily_relation, rollup_columns)) -%}
        {%- do everything.extend(dashboard_mv_rollups_all(relation, rollups, rollup_columns)) -%}
    {%- endif -%}
    {%- set tag = '$dq_step$' -%}
    {%- do dashquery_refuse_dollar_tags('dashboard_mv ' ~ relation, changed + everything, [tag, '$dq_refresh$']) -%}
do $dq_refresh$
begin
    if current_setting('dashquery.capture_covers')::boolean then
        {%- for statement in changed %}
        execute {{ tag }}{{ statement }}{{ tag }};
        {%- endfor %}
    else
        {%- for statement in everything %}
        execute {{ tag }}{{ statement }}{{ tag }};
        {%- endfor %}
    end if;
end
$dq_refresh$;
{%- endmacro %}


{#
  dashquery_refresh_groups_default: the distinct unique_key values of the change rows, for a
  key made of organization_id and (optionally) business_day: a daily block's
  (organization, day) groups, or current_state's organizations ('-infinity' rows).
#}
{% macro dashquery_refresh_groups_default(relation, daily_relation, sql, unique_key) -%}
    {%- for column in unique_key if column not in ['organization_id', 'business_day'] -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ relation ~ ": unique_key column " ~ column ~ " is not in dashquery_changes; configure refresh_groups") }}
    {%- endfor -%}
    select distinct {{ unique_key | join(', ') }} from dq_changed_days
{%- endmacro %}


{#
  dashquery_refresh_rows_default: the groups recomputed from the model's own SQL, LATERAL per
  organization: for a day key, one pass per organization over all its changed days at once
  (business_day = any(its days)), so the organization_id = and business_day = any() quals
  are pushed through the daily view (and its UNION ALL / GROUP BY) down to the source
  tables' expression indexes as index conditions (EXPLAIN: Index Scans on
  dq_<table>_org_<ts>_day with "= ANY", one per organization and table), and each join the
  view makes is set up once per organization instead of once per day: at 10x, after 1,000
  changed rows, jobs/energy/pipeline took 200-300 ms each with one LATERAL loop per
  (organization, day) and ~25-40 ms per organization. A key without business_day
  (current_state's) is one loop per organization anyway.
#}
{% macro dashquery_refresh_rows_default(relation, daily_relation, sql, unique_key) -%}
    {%- if unique_key | list == ['organization_id', 'business_day'] -%}
    select dq_new.*
    from (
        select organization_id, array_agg(business_day) as days
        from dq_groups group by organization_id
    ) as dq_orgs
    cross join lateral (
        select * from (
            {{ sql }}
        ) as dq_model
        where dq_model.organization_id = dq_orgs.organization_id and dq_model.business_day = any(dq_orgs.days)
        offset 0
    ) as dq_new
    {%- else -%}
    {%- set matches = [] -%}
    {%- for column in unique_key -%}
        {%- do matches.append('dq_model.' ~ adapter.quote(column) ~ ' = dq_groups.' ~ adapter.quote(column)) -%}
    {%- endfor -%}
    select dq_new.*
    from dq_groups
    cross join lateral (
        select * from (
            {{ sql }}
        ) as dq_model
        where {{ matches | join(' and ') }}
        offset 0
    ) as dq_new
    {%- endif -%}
{%- endmacro %}


{#
  mv_order_customer_days (key organization_id, customer_id; order_days a datemultirange):
  the groups are the customers whose membership of a changed day differs between what is
  stored and what is live: stored order_days contain the day but they no longer order on it,
  or they order on it now and the stored days don't contain it. Every other customer's
  stored order_days are right as they are: right for the days that did not change (that is
  what capture guarantees) and, by the test above, for the changed ones too. So a changed
  order total, status or line recomputes nobody here, and a moved order one customer
  (measured at 10x after 1,000 changed rows: 7,984 customers rewritten in ~380 ms when every
  customer ordering on a changed day was a group). Their new order_days are the stored days
  minus the organization's changed days plus the changed days on which they order now
  (dashquery_customer_days_rows). Both sides read only the changed days: the live side by
  org + day index probes into daily_order_customers, the stored side by the organization's
  rows whose order_days overlap its changed days.
#}
{% macro dashquery_customer_days_groups(relation, daily_relation, sql, unique_key) -%}
    with

    dq_org_changes as (
        select organization_id, range_agg(daterange(business_day, business_day, '[]')) as days
        from dq_changed_days group by organization_id
    ),

    dq_stored as (
        select stored_row.organization_id, stored_row.customer_id, stored_row.days
        from dq_org_changes as changed
        cross join lateral (
            select organization_id, customer_id, order_days * changed.days as days
            from {{ relation }} as stored_row
            where stored_row.organization_id = changed.organization_id and stored_row.order_days && changed.days
            offset 0
        ) as stored_row
    ),

    dq_live as (
        select
            daily.organization_id,
            daily.customer_id,
            range_agg(daterange(daily.business_day, daily.business_day, '[]')) as days
        from dq_changed_days as changed
        cross join lateral (
            select organization_id, customer_id, business_day
            from {{ daily_relation }} as source_day
            where source_day.organization_id = changed.organization_id and source_day.business_day = changed.business_day
            offset 0
        ) as daily
        group by daily.organization_id, daily.customer_id
    )

    select
        coalesce(dq_stored.organization_id, dq_live.organization_id) as organization_id,
        coalesce(dq_stored.customer_id, dq_live.customer_id) as customer_id
    from dq_stored
    full outer join dq_live
        on dq_stored.organization_id = dq_live.organization_id and dq_stored.customer_id = dq_live.customer_id
    where dq_stored.days is distinct from dq_live.days
{%- endmacro %}

{% macro dashquery_customer_days_rows(relation, daily_relation, sql, unique_key) -%}
    select organization_id, customer_id, order_days
    from (
        select
            dq_groups.organization_id,
            dq_groups.customer_id,
            coalesce(stored.order_days - changed.days, '{}'::datemultirange)
            + coalesce(live.days, '{}'::datemultirange) as order_days
        from dq_groups
        inner join (
            select organization_id, range_agg(daterange(business_day, business_day, '[]')) as days
            from dq_changed_days group by organization_id
        ) as changed on dq_groups.organization_id = changed.organization_id
        left join lateral (
            select stored_row.order_days
            from {{ relation }} as stored_row
            where
                stored_row.organization_id = dq_groups.organization_id
                and stored_row.customer_id = dq_groups.customer_id
            offset 0
        ) as stored on true
        left join (
            select
                daily.organization_id,
                daily.customer_id,
                range_agg(daterange(daily.business_day, daily.business_day, '[]')) as days
            from dq_changed_days as day_changed
            cross join lateral (
                select organization_id, customer_id, business_day
                from {{ daily_relation }} as source_day
                where
                    source_day.organization_id = day_changed.organization_id
                    and source_day.business_day = day_changed.business_day
                offset 0
            ) as daily
            group by daily.organization_id, daily.customer_id
        ) as live on live.organization_id = dq_groups.organization_id and live.customer_id = dq_groups.customer_id
    ) as recomputed
    where not isempty(order_days)
{%- endmacro %}
