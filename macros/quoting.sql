{#
  dashquery_literal: a value as a SQL string literal, quotes doubled. Every name spliced into
  a literal (schema, view, invocation id, error text) goes through it, so a schema such as
  `Dash Views` or `O'Brien` can never end the literal early (issue 11 item 13). Identifiers
  go through Relation objects or adapter.quote instead.
#}
{% macro dashquery_literal(value) -%}
    '{{ (value | string) | replace("'", "''") }}'
{%- endmacro %}


{#
  dashquery_text_array: a list of strings as a text[] literal (an empty list gives an empty
  array, not a syntax error).
#}
{% macro dashquery_text_array(values) -%}
    array[{% for value in values %}{{ dashquery_literal(value) }}{{ ", " if not loop.last }}{% endfor %}]::text[]
{%- endmacro %}


{#
  dashquery_refuse_dollar_tags: fail the compile when any of `statements` contains one of
  `tags`, the dollar quotes the caller wraps them in (a statement holding one would end the
  quoted string early). `owner` names the caller in the message.
#}
{% macro dashquery_refuse_dollar_tags(owner, statements, tags) -%}
    {%- for statement in statements -%}
        {%- for tag in tags if tag in statement -%}
            {{ exceptions.raise_compiler_error(owner ~ ": the SQL contains " ~ tag) }}
        {%- endfor -%}
    {%- endfor -%}
{%- endmacro %}


{#
  dashquery_source_schema: the application schema the sources point at (DASHQUERY_SOURCE_SCHEMA,
  as _sources.yml reads it), recorded beside every relation built.
#}
{% macro dashquery_source_schema() -%}
    {%- for node in graph.sources.values() if node.source_name == 'application' -%}
        {{ return(node.schema) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("dashquery: no 'application' source is defined") }}
{%- endmacro %}


{#
  dashquery_definition_hash: the hash a relation's definition is recorded under (its compiled
  SQL plus whatever else the caller appends). dbt renders every ref and source with the
  database name in front ("db"."schema"."name"), which is not part of the definition: a
  database copied or restored under another name (CREATE DATABASE ... TEMPLATE, pg_restore
  into a new database) holds the same relations, and hashing the name made its next run
  rebuild every materialized relation from scratch. The database qualifier is taken out
  before hashing; the SQL that runs keeps it.
#}
{% macro dashquery_definition_hash(text) -%}
    {{ return(local_md5(text | replace(adapter.quote(target.database) ~ '.', ''))) }}
{%- endmacro %}
