{#
  source_index: CREATE INDEX CONCURRENTLY IF NOT EXISTS on an application table, for use as
  an after_commit post-hook of the model whose live reads need it. CONCURRENTLY never blocks
  the application's writes (and cannot run in a transaction, hence after_commit); IF NOT
  EXISTS makes every later run free. The name ends in a hash of the definition, which embeds
  the time zone, so a changed zone builds a matching index instead of keeping a useless one.
  The index name is quoted like every identifier (it is lowercase, so existing indexes keep
  their names); the table is a Relation, quoted by dbt.
#}
{% macro source_index(table, name, columns, where=none, include=none) -%}
    {%- set body -%}
        ({{ columns | join(', ') }})
        {%- if include %} include ({{ include | join(', ') }}){% endif %}
        {%- if where %} where {{ where }}{% endif %}
    {%- endset -%}
    {%- set index_name = 'dq_' ~ table ~ '_' ~ name ~ '_' ~ local_md5(body)[:8] -%}
    create index concurrently if not exists {{ adapter.quote(index_name) }}
    on {{ source('application', table) }} {{ body }}
{%- endmacro %}


{#
  analyze_sources: ANALYZE the application tables after their indexes are built. PostgreSQL
  only gathers statistics on an expression index's expression (the business day) at the next
  ANALYZE; until then the planner guesses the live half's row counts. ANALYZE samples, so it
  is cheap, and it never blocks the application's reads or writes.
#}
{% macro analyze_sources(tables) -%}
    analyze {% for table in tables %}{{ source('application', table) }}{{ ", " if not loop.last }}{% endfor %}
{%- endmacro %}
