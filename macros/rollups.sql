{#
  Month and year rollups of a daily block (issue 14 item 1: a read costs the same for 1 and
  3,660 days). Config `rollups: true` on a dashboard_mv whose rows are one per
  (organization_id, business_day) with every other column additive: beside the relation the
  materialization keeps <relation>__rollups, a table of
      (organization_id, grain 'month' | 'year', period_start, <each column summed>)
  with the unique index <relation>__rollups__key on (organization_id, grain, period_start).
  The read path splits a range into at most 2 x 30 days, 2 x 11 months and the whole years
  between: at most ~92 index-range rows per block instead of one row per day.

  Why rollups and not cumulative sums per day (two lookups per range): a changed day would
  rewrite every later day of its organization (a back-dated change 400 days ago: 400 rows
  per block), so refresh work would grow with history again. A rollup changes with its day:
  one month row and one year row per changed (organization, month).

  They are always written in the same transaction as the day rows they sum (build, swap,
  incremental refresh, recompute all), and computed from those day rows, never from the
  daily view: a rollup is exactly the sum of the relation's days in its period. So the read
  path may add a rollup and correct it by the days recorded as changed since (minus the
  stored day, plus the live day): integer and numeric sums subtract exactly.
  Only the incremental strategy (a table) keeps rollups; with 'concurrent' they are dropped
  and the read path sums day rows as before.
#}

{# dashboard_mv_rollups_relation: the rollups table of a relation (the read path names it
   the same: dashquery.catalog.ROLLUPS_SUFFIX, checked by tests/python/test_rollups.py). #}
{% macro dashboard_mv_rollups_relation(relation) -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema, identifier=relation.identifier ~ '__rollups', type='table')) }}
{%- endmacro %}


{# dashboard_mv_rollup_columns: the model's columns other than its key: the summed ones. #}
{% macro dashboard_mv_rollup_columns(sql, unique_key) -%}
    {%- if unique_key | list != ['organization_id', 'business_day'] -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": rollups need unique_key [organization_id, business_day], not " ~ unique_key) }}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for column in get_columns_in_query(sql) if column not in unique_key -%}
        {%- do columns.append(column) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}


{#- sums of the columns, quoted, each named after itself -#}
{% macro dashboard_mv_rollup_sums(columns) -%}
    {%- for column in columns -%}
        sum({{ adapter.quote(column) }}) as {{ adapter.quote(column) }}{{ ', ' if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#
  dashboard_mv_rollups_select: every rollup row of a relation's day rows: its months, and
  the years summed from those months. Ordered by the key so one organization's rows sit
  together on few pages.
#}
{% macro dashboard_mv_rollups_select(days_relation, columns) -%}
    with

    dq_months as (
        select
            organization_id,
            'month'::text as grain,
            date_trunc('month', business_day::timestamp)::date as period_start,
            {{ dashboard_mv_rollup_sums(columns) }}
        from {{ days_relation }}
        group by organization_id, date_trunc('month', business_day::timestamp)::date
    ),

    dq_years as (
        select
            organization_id,
            'year'::text as grain,
            date_trunc('year', period_start::timestamp)::date as period_start,
            {{ dashboard_mv_rollup_sums(columns) }}
        from dq_months
        group by organization_id, date_trunc('year', period_start::timestamp)::date
    )

    select * from dq_months
    union all
    select * from dq_years
    order by organization_id, grain, period_start
{%- endmacro %}


{#
  dashboard_mv_rollups_build: statements that create the rollups of a just-built relation
  under the building name (swapped in with the relation, dashboard_mv_build_and_swap).
#}
{% macro dashboard_mv_rollups_build(building_rollups, building_days, columns) -%}
    {{ dashquery_drop_sql(building_rollups) }};
    create table {{ building_rollups }} as
    {{ dashboard_mv_rollups_select(building_days, columns) }};
    create unique index {{ adapter.quote(building_rollups.identifier ~ '_key') }}
    on {{ building_rollups }} (organization_id, grain, period_start);
{%- endmacro %}


{#
  dashboard_mv_rollups_changed: after an incremental refresh replaced the changed days, in
  the same transaction (so these statements see its new day rows): each (organization,
  month) with a changed day is re-summed from the relation's days, then each (organization,
  year) from its months; a period left without days loses its row. The periods come from
  the change rows the refresh's snapshot sees, the same rows its day statement recomputed.
  dashboard_mv_rollups_all: every rollup rebuilt from the day rows (the recompute-all
  branch). Both return statements for dashboard_mv_incremental_refresh.
#}
{% macro dashboard_mv_rollups_changed(relation, rollups, daily_relation, columns) -%}
    {%- set statements = [] -%}
    {%- for grain, source, day_column in [('month', relation, 'business_day'), ('year', rollups, 'period_start')] -%}
    {%- set statement -%}
    with

    dq_periods as materialized (
        select distinct
            organization_id,
            date_trunc('{{ grain }}', business_day::timestamp)::date as period_start
        from {{ bookkeeping_relation('dashquery_changes') }}
        where daily_view = {{ dashquery_literal(daily_relation.identifier) }}
    ),

    dq_deleted as (
        delete from {{ rollups }} as dq_old
        using dq_periods
        where
            dq_old.organization_id = dq_periods.organization_id
            and dq_old.grain = '{{ grain }}'
            and dq_old.period_start = dq_periods.period_start
        returning 1
    )

    insert into {{ rollups }}
    select dq_periods.organization_id, '{{ grain }}', dq_periods.period_start, dq_sums.*
    from dq_periods
    cross join lateral (
        select {{ dashboard_mv_rollup_sums(columns) }}
        from {{ source }} as dq_part
        where
            dq_part.organization_id = dq_periods.organization_id
            {%- if grain == 'year' %}
            and dq_part.grain = 'month'
            {%- endif %}
            and dq_part.{{ day_column }} >= dq_periods.period_start
            and dq_part.{{ day_column }} < (dq_periods.period_start + interval '1 {{ grain }}')::date
        having count(*) > 0
        offset 0
    ) as dq_sums
    where (select count(*) from dq_deleted) >= 0
    {%- endset -%}
    {%- do statements.append(statement | trim) -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}

{% macro dashboard_mv_rollups_all(relation, rollups, columns) -%}
    {{ return([
        'delete from ' ~ rollups,
        'insert into ' ~ rollups ~ ' select * from (' ~ dashboard_mv_rollups_select(relation, columns) ~ '\n) as dq_all',
    ]) }}
{%- endmacro %}
