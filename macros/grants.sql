{#
  Grants (issue 11 item 14). Both materializations apply dbt's `grants` config with
  apply_grants in the same transaction as their DDL, so a rebuilt relation is never seen
  ungranted after commit. var('dashquery_read_roles') (a list, default []) adds SELECT for
  the application's read-only roles to every relation, and create_bookkeeping_tables grants
  them USAGE on the schema and SELECT on the bookkeeping tables the read path reads.
#}

{#
  dashquery_read_roles: the roles of var('dashquery_read_roles'). dbt's GRANT template does
  not quote grantees, so only plain lowercase role names are accepted (fail loudly otherwise).
#}
{% macro dashquery_read_roles() -%}
    {%- set roles = var('dashquery_read_roles', []) -%}
    {%- if roles is string -%}
        {%- set roles = [roles] if roles else [] -%}
    {%- endif -%}
    {%- for role in roles if not modules.re.match('^[a-z_][a-z0-9_]*$', role | string) -%}
        {{ exceptions.raise_compiler_error("dashquery_read_roles: " ~ role ~ " is not a plain lowercase role name") }}
    {%- endfor -%}
    {{ return(roles | list) }}
{%- endmacro %}


{# dashquery_grant_config: the model's `grants` config with the read roles added to select. #}
{% macro dashquery_grant_config() -%}
    {%- set grants = {} -%}
    {%- for privilege, grantees in (config.get('grants') or {}).items() -%}
        {%- do grants.update({privilege: ([grantees] if grantees is string else grantees | list)}) -%}
    {%- endfor -%}
    {%- set readers = grants.get('select', []) -%}
    {%- for role in dashquery_read_roles() if role not in readers -%}
        {%- do readers.append(role) -%}
    {%- endfor -%}
    {%- if readers -%}
        {%- do grants.update({'select': readers}) -%}
    {%- endif -%}
    {{ return(grants) }}
{%- endmacro %}


{#
  dashquery_new_relation_grants: the GRANT statements for a relation this statement creates
  (a first build or a rebuild's swap), to be sent in the same statement as the swap: a new
  relation has no grants, so granting after the swap's commit would leave the read roles a
  moment of "permission denied". apply_grants still runs afterwards (it finds them in place).
#}
{% macro dashquery_new_relation_grants(relation) -%}
    {%- for statement in get_dcl_statement_list(relation, dashquery_grant_config(), get_grant_sql) %}
    {{ statement }};
    {%- endfor %}
{%- endmacro %}


{#
  postgres__get_show_grant_sql: overrides dbt-postgres'. Its query reads
  information_schema.role_table_grants, which lists no materialized views (relkind 'm'), so
  apply_grants would never see an mv's grants (re-granting on every run and never revoking),
  and it splices the names into literals unescaped. This one reads pg_class.relacl directly.
#}
{% macro postgres__get_show_grant_sql(relation) -%}
    select grantee.rolname as grantee, acl.privilege_type
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    cross join lateral aclexplode(c.relacl) as acl
    inner join pg_catalog.pg_roles as grantee on acl.grantee = grantee.oid
    where
        n.nspname = {{ dashquery_literal(relation.schema) }}
        and c.relname = {{ dashquery_literal(relation.identifier) }}
        and acl.grantor = (select oid from pg_catalog.pg_roles where rolname = current_role)
        and acl.grantee <> acl.grantor
{%- endmacro %}


{#
  dashquery_grant_read_access: USAGE on the view schema and SELECT on the bookkeeping tables
  for the read roles (part of the on-run-start hook, after the bookkeeping tables exist).
  A role that the last run granted (dashquery_deployment.read_roles) and the var no longer
  names loses USAGE on the schema and SELECT on everything in it, so taking a role out of
  the var takes its access away (the relations' own grants are also revoked by apply_grants
  as each is rebuilt, but a schema grant and the bookkeeping tables' would stay). Only roles
  recorded there are revoked: a grant made by hand to a role dashquery never granted stays.
#}
{% macro dashquery_grant_read_access(tables) -%}
    {%- set roles = dashquery_read_roles() -%}
    {%- set deployment = bookkeeping_relation('dashquery_deployment') -%}
    {%- set current = dashquery_text_array(roles) -%}
    {%- if roles %}
    grant usage on schema {{ adapter.quote(target.schema) }} to {{ roles | join(', ') }};
    {%- for table in tables %}
    grant select on {{ bookkeeping_relation(table) }} to {{ roles | join(', ') }};
    {%- endfor %}
    {%- endif %}
    do $dq_revoke$
    declare
        removed text;
    begin
        for removed in
            select unnest(read_roles) from {{ deployment }}
            except select unnest({{ current }})
        loop
            if exists (select from pg_catalog.pg_roles where rolname = removed) then
                execute format('revoke usage on schema %I from %I', {{ dashquery_literal(target.schema) }}, removed);
                execute format('revoke select on all tables in schema %I from %I', {{ dashquery_literal(target.schema) }}, removed);
            end if;
        end loop;
        update {{ deployment }} set read_roles = {{ current }}
        where read_roles is distinct from {{ current }};
    end
    $dq_revoke$;
{%- endmacro %}
