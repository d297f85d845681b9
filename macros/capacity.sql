{#
  capacity_kwh(specifications): contract §3 capacity(product), the kWh of one unit of a
  product, read from its `specifications` jsonb as a numeric that is never null.

  specifications -> 'capacity_kwh' counts as
    - a JSON number: its value;
    - a JSON string holding a plain decimal number: that number. Plain means, in full: optional
      spaces (U+0020 only), an optional sign (+ or -), digits with an optional fraction
      ("13.5", "5.", ".5"), an optional exponent of at most 4 digits (e or E, optional sign:
      "1e1", "2.5E-3"), optional spaces; at most 1000 characters in all. Digits are ASCII
      [0-9] only (never \d, which may take other scripts' digits);
    - anything else: 0. That is: missing, null, booleans, objects, arrays, and strings such as
      "13.5 kWh", "", "NaN", "Infinity", "1,5", "１２" (full-width), "\t5" (tabs, newlines and
      other whitespace are not spaces), "1e99999" (exponent of 5 digits or more).
  Any value whose absolute value is 10^100 or more (a JSON number or a string) also counts as 0.

  Why: product data is the application's and may hold anything; one organization's odd value
  must never fail the refresh of mv_daily_energy (every tenant would read energy live) nor a
  read of daily_energy (contract §3). A plain `::numeric` cast raises on junk strings, and
  even on some well-formed ones: PostgreSQL's numeric holds at most 131072 digits before the
  point and 16383 after, so "1e999999" or a string of 20000 digits overflows. The 1000
  characters and 4 exponent digits keep every accepted string inside numeric's range, so the
  cast below cannot raise. The 10^100 bound covers JSON numbers too: jsonb stores numbers up to
  ~10^131072, and quantity × such a value, or a sum of them, overflows numeric; below 10^100
  every total stays far inside numeric's range and finite even as the binary float of
  `DashboardMetrics.to_dict()`. No battery comes near either bound.

  Each test sits in its own CASE branch so that a cast is only reached once its input passed:
  PostgreSQL does not promise the evaluation order of AND, but it does of CASE. dashquery's
  oracle (dashquery/naive.py) states the same rule separately, in its own SQL.
#}
{% macro capacity_kwh(specifications) -%}
    {{ return(adapter.dispatch('capacity_kwh', 'dashquery')(specifications)) }}
{%- endmacro %}

{% macro default__capacity_kwh(specifications) -%}
    {%- set value = '(' ~ specifications ~ " -> 'capacity_kwh')" -%}
    {%- set text = '(' ~ specifications ~ " ->> 'capacity_kwh')" -%}
    (case jsonb_typeof({{ value }})
        when 'number' then
            case when abs({{ value }}::numeric) < 1e100 then {{ value }}::numeric else 0 end
        when 'string' then
            case
                when length({{ text }}) > 1000 then 0
                when {{ text }} !~ '^ *[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})? *$' then 0
                when abs({{ text }}::numeric) >= 1e100 then 0
                else {{ text }}::numeric
            end
        else 0
    end)
{%- endmacro %}
