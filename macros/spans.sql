{#
  Spans of a set of days (issue 14 item 1: unique_customers exact at a cost that does not grow
  with the customer count). Config `spans: <column>` on a dashboard_mv keyed
  (organization_id, <entity>) whose <column> is a datemultirange (mv_order_customer_days:
  each customer's order days). Beside the relation the materialization keeps two tables:

    <relation>__ends (organization_id, grain 'day' | 'month' | 'year', period_start,
        first_count, last_count): how many entities have their first (last) day in the
        period; unique index <relation>__ends__key on (organization_id, grain, period_start).
    <relation>__gaps (organization_id, <entity>, after_day, before_day, gap_days): one row per
        gap between two consecutive days of an entity's set (after_day and before_day are
        both in the set, nothing between them is; gap_days = before_day - after_day);
        indexes on (organization_id, <entity>, after_day) (unique), (organization_id,
        before_day) and (organization_id, gap_days).

  Why: the entities with a day in [a, s) are those with first < s and last >= a, except the
  ones with a gap around the whole range (after_day < a and before_day >= s; at most one gap
  per entity can). So their count is
      firsts before s - lasts before a - gaps around [a, s)
  (every entity whose last day is before a has its first before s too). The two prefix sums
  take the ends' year, month and day rows (at most ~10 + 11 + 30), like the rollups; the gaps
  around a range ending at s are found by before_day >= s (none when s is the split: the
  stored days are all before it) or, for a range ending in the past, by gap_days >= s - a + 1
  (only gaps longer than the range qualify). Testing every entity's multirange instead costs
  one row per entity (~200k for a large tenant).

  Written in the same transaction as the relation's rows (build and swap, incremental refresh,
  recompute all) and computed from them, never from the daily view, so the read path can mix
  them with the relation in one snapshot. The incremental refresh adjusts them from the rows
  it replaced: each replaced entity's old row takes its ends back (-1) and its gaps away, its
  new row adds them (+1), so the work is proportional to the replaced entities. Only the
  incremental strategy (a table) keeps them; with 'concurrent' they are dropped and the read
  path tests each entity's multirange as before.
#}

{# dashboard_mv_spans_relations: the two tables of a relation, by role (the read path names
   them the same: dashquery.catalog.SPANS_ENDS_SUFFIX / SPANS_GAPS_SUFFIX). #}
{% macro dashboard_mv_spans_relations(relation) -%}
    {%- set found = {} -%}
    {%- for role in ['ends', 'gaps'] -%}
        {%- do found.update({role: api.Relation.create(database=relation.database, schema=relation.schema, identifier=relation.identifier ~ '__' ~ role, type='table')}) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{# dashboard_mv_spans_entity: the key column beside organization_id. #}
{% macro dashboard_mv_spans_entity(unique_key) -%}
    {%- if unique_key | length != 2 or unique_key[0] != 'organization_id' -%}
        {{ exceptions.raise_compiler_error("dashboard_mv " ~ this ~ ": spans need unique_key [organization_id, <entity>], not " ~ unique_key) }}
    {%- endif -%}
    {{ return(unique_key[1]) }}
{%- endmacro %}


{#
  dashboard_mv_spans_gaps_select: the gap rows of `source` (a relation or a CTE with
  organization_id, the entity and the multirange column): consecutive ranges of the set,
  the last day of one and the first of the next.
#}
{% macro dashboard_mv_spans_gaps_select(source, entity, column) -%}
    select dq_set.organization_id, dq_set.{{ adapter.quote(entity) }}, dq_gap.after_day, dq_gap.before_day,
        dq_gap.before_day - dq_gap.after_day as gap_days
    from {{ source }} as dq_set
    cross join lateral (
        select upper(dq_range) - 1 as after_day, lead(lower(dq_range)) over (order by dq_range) as before_day
        from unnest(dq_set.{{ adapter.quote(column) }}) as dq_range
    ) as dq_gap
    where dq_gap.before_day is not null
{%- endmacro %}


{#
  dashboard_mv_spans_ends_select: the ends rows of `moved`, a query of (organization_id,
  sign, <column>): each set's first and last day counted `sign` times in its day, month and
  year. sign is 1 for a build; -1 (a replaced row) and 1 (its replacement) for a refresh.
#}
{% macro dashboard_mv_spans_ends_select(moved, column) -%}
    select dq_moved.organization_id, dq_period.grain, dq_period.period_start,
        sum(dq_end.first_count)::bigint as first_count,
        sum(dq_end.last_count)::bigint as last_count
    from ({{ moved }}) as dq_moved
    cross join lateral (
        values
            (lower(dq_moved.{{ adapter.quote(column) }}), dq_moved.sign, 0),
            (upper(dq_moved.{{ adapter.quote(column) }}) - 1, 0, dq_moved.sign)
    ) as dq_end (business_day, first_count, last_count)
    cross join lateral (
        values
            ('day'::text, dq_end.business_day),
            ('month'::text, date_trunc('month', dq_end.business_day::timestamp)::date),
            ('year'::text, date_trunc('year', dq_end.business_day::timestamp)::date)
    ) as dq_period (grain, period_start)
    where not isempty(dq_moved.{{ adapter.quote(column) }})
    group by dq_moved.organization_id, dq_period.grain, dq_period.period_start
{%- endmacro %}


{% macro dashboard_mv_spans_indexes(tables, entity) -%}
    create unique index {{ adapter.quote(tables.ends.identifier ~ '_key') }}
    on {{ tables.ends }} (organization_id, grain, period_start);
    create unique index {{ adapter.quote(tables.gaps.identifier ~ '_key') }}
    on {{ tables.gaps }} (organization_id, {{ adapter.quote(entity) }}, after_day);
    create index {{ adapter.quote(tables.gaps.identifier ~ '_by_end') }}
    on {{ tables.gaps }} (organization_id, before_day) include (after_day);
    create index {{ adapter.quote(tables.gaps.identifier ~ '_by_length') }}
    on {{ tables.gaps }} (organization_id, gap_days) include (after_day, before_day);
{%- endmacro %}


{#
  dashboard_mv_spans_build: statements that create the tables of a just-built relation under
  building names (building: the same dict as dashboard_mv_spans_relations), swapped in with
  the relation (dashboard_mv_spans_swap: their renames, the indexes' too).
#}
{% macro dashboard_mv_spans_build(building, building_days, entity, column) -%}
    {{ dashquery_drop_sql(building.ends) }};
    {{ dashquery_drop_sql(building.gaps) }};
    create table {{ building.ends }} as
    {{ dashboard_mv_spans_ends_select('select organization_id, 1 as sign, ' ~ adapter.quote(column) ~ ' from ' ~ building_days, column) }}
    order by 1, 2, 3;
    create table {{ building.gaps }} as
    {{ dashboard_mv_spans_gaps_select(building_days, entity, column) }}
    order by 1, 2, 3;
    {{ dashboard_mv_spans_indexes(building, entity) }}
{%- endmacro %}

{% macro dashboard_mv_spans_swap(tables, building) -%}
    {%- set statements = [] -%}
    {%- for role in ['ends', 'gaps'] -%}
        {%- do statements.append(get_rename_sql(building[role], adapter.quote(tables[role].identifier)) | trim) -%}
        {%- for index in (['_key'] if role == 'ends' else ['_key', '_by_end', '_by_length']) -%}
            {%- do statements.append('alter index ' ~ building[role].incorporate(path={'identifier': building[role].identifier ~ index}) ~ ' rename to ' ~ adapter.quote(tables[role].identifier ~ '_' ~ index)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}


{#
  dashboard_mv_spans_changed: CTEs appended to dashboard_mv_incremental's statement, which
  names the relation's replaced rows dq_deleted and their replacements dq_inserted (both
  RETURNING *): the replaced entities' gaps are deleted (by ctid through the unique index,
  LATERAL per entity, as the relation's own rows) and their new ones inserted after that; the
  ends get -1 for each old first and last day and +1 for each new one, upserted per period.
#}
{% macro dashboard_mv_spans_changed(tables, entity, column) -%}
    dq_gaps_deleted as (
        delete from {{ tables.gaps }}
        where ctid = any(array(
            select dq_old_gap.ctid
            from dq_deleted
            cross join lateral (
                select ctid from {{ tables.gaps }} as dq_gap
                where dq_gap.organization_id = dq_deleted.organization_id
                    and dq_gap.{{ adapter.quote(entity) }} = dq_deleted.{{ adapter.quote(entity) }}
                offset 0
            ) as dq_old_gap
        ))
        returning 1
    ),

    dq_gaps_inserted as (
        insert into {{ tables.gaps }}
        select * from ({{ dashboard_mv_spans_gaps_select('dq_inserted', entity, column) }}) as dq_new_gaps
        where (select count(*) from dq_gaps_deleted) >= 0
        returning 1
    ),

    dq_ends_moved as (
        insert into {{ tables.ends }} as dq_old_end
        select * from (
            {{ dashboard_mv_spans_ends_select(
                'select organization_id, -1 as sign, ' ~ adapter.quote(column) ~ ' from dq_deleted'
                ~ ' union all select organization_id, 1, ' ~ adapter.quote(column) ~ ' from dq_inserted', column) }}
        ) as dq_delta
        where dq_delta.first_count <> 0 or dq_delta.last_count <> 0
        on conflict (organization_id, grain, period_start) do update
        set first_count = dq_old_end.first_count + excluded.first_count,
            last_count = dq_old_end.last_count + excluded.last_count
        returning 1
    )
{%- endmacro %}


{# dashboard_mv_spans_all: both tables recomputed from the relation (recompute all). #}
{% macro dashboard_mv_spans_all(relation, tables, entity, column) -%}
    {{ return([
        'delete from ' ~ tables.ends,
        'insert into ' ~ tables.ends ~ ' ' ~ dashboard_mv_spans_ends_select('select organization_id, 1 as sign, ' ~ adapter.quote(column) ~ ' from ' ~ relation, column),
        'delete from ' ~ tables.gaps,
        'insert into ' ~ tables.gaps ~ ' ' ~ dashboard_mv_spans_gaps_select(relation, entity, column),
    ]) }}
{%- endmacro %}
