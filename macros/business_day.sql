{#
  business_day: the calendar day a timestamptz belongs to in the business time zone
  (contract §3: day(ts) = (ts AT TIME ZONE DASHQUERY_TIMEZONE)::date).
  The zone is written into the SQL as a literal, never a parameter: only then is the
  expression immutable, so the expression indexes on the source tables can serve it.
#}
{% macro business_day(column, timezone=none) -%}
    {{ return(adapter.dispatch('business_day', 'dashquery')(column, timezone)) }}
{%- endmacro %}

{% macro default__business_day(column, timezone) -%}
    (({{ column }} at time zone '{{ timezone or dashquery_timezone() }}')::date)
{%- endmacro %}


{#
  dashquery_timezone: DASHQUERY_TIMEZONE, checked to be a plain IANA name because it is
  spliced into SQL as a literal.
#}
{% macro dashquery_timezone() -%}
    {%- set zone = env_var('DASHQUERY_TIMEZONE', 'Australia/Sydney') -%}
    {%- if not modules.re.match('^[A-Za-z0-9_+/-]+$', zone) -%}
        {{ exceptions.raise_compiler_error("DASHQUERY_TIMEZONE=" ~ zone ~ " is not an IANA time zone name") }}
    {%- endif -%}
    {{ return(zone) }}
{%- endmacro %}
