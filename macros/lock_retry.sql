{#
  dashquery_retrying_on_lock: DDL that needs an ACCESS EXCLUSIVE lock on a relation readers
  use (CREATE OR REPLACE VIEW, a rebuild's drop + rename swap), run so readers never queue
  behind it for longer than a short lock_timeout (issue 11 item 11).

  A lock request that waits puts every later reader of the relation in the queue behind it;
  one long reader would otherwise stall all of them for as long as it runs. So each attempt
  runs the statements in a subtransaction (a BEGIN ... EXCEPTION block) with lock_timeout =
  var('dashquery_lock_timeout_ms'); on lock_not_available the subtransaction (and any lock it
  took) is rolled back, readers flow again, and after a jittered backoff it tries again, up
  to var('dashquery_lock_attempts') times, then fails loudly (the run's transaction rolls back
  whole, so nothing half-done is left). On success the locks are kept until the enclosing
  transaction commits, and the caller's lock_timeout is restored for the rest of it.

  Arguments: statements (list of SQL strings, each a single statement without a trailing ';').
  Renders one DO statement.
#}
{% macro dashquery_retrying_on_lock(statements) -%}
    {%- set timeout_ms = var('dashquery_lock_timeout_ms', 500) | int -%}
    {%- set attempts = var('dashquery_lock_attempts', 240) | int -%}
    {%- if timeout_ms < 1 or attempts < 1 -%}
        {{ exceptions.raise_compiler_error("dashquery_lock_timeout_ms and dashquery_lock_attempts must be positive") }}
    {%- endif -%}
    {%- set tag = '$dq_ddl$' -%}
    {%- do dashquery_refuse_dollar_tags('dashquery_retrying_on_lock', statements, [tag, '$dq_retry$']) -%}
do $dq_retry$
declare
    attempt integer := 1;
    caller_lock_timeout text := current_setting('lock_timeout');
begin
    loop
        begin
            perform set_config('lock_timeout', '{{ timeout_ms }}ms', true);
            {%- for statement in statements %}
            execute {{ tag }}{{ statement }}{{ tag }};
            {%- endfor %}
            perform set_config('lock_timeout', caller_lock_timeout, true);
            return;
        exception when lock_not_available then
            if attempt >= {{ attempts }} then
                raise exception 'dashquery: could not lock within {{ timeout_ms }} ms in % attempts (a long transaction holds the relation)', attempt
                using errcode = 'lock_not_available',
                      hint = 'end the long transaction, or raise var dashquery_lock_attempts';
            end if;
        end;
        -- Back off 50 ms, 100 ms, ... up to 2 s, with jitter; readers are not blocked meanwhile.
        perform pg_sleep(least(2.0, 0.05 * power(2, least(attempt, 7) - 1)) * (0.5 + random() / 2));
        attempt := attempt + 1;
    end loop;
end
$dq_retry$
{%- endmacro %}
