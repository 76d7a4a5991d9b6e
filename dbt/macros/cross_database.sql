{#- SQL that DuckDB and Postgres spell differently, one macro per rule. Each one goes through
    dbt's cross-database macros or `adapter.dispatch`: DuckDB keeps its own functions (the SQL it
    ran before, and their speed), Postgres and other adapters get the portable form. Models use
    these instead of the DuckDB-only functions (tests/test_portable_sql.py checks that). -#}

{% macro month_start(day) -%}
    {#- The first day of the day's month, a DATE (date_trunc gives a timestamp). -#}
    cast({{ dbt.date_trunc('month', day) }} as date)
{%- endmacro %}


{% macro month_end(day) -%}
    {#- The last day of the day's month, a DATE. -#}
    {{ return(adapter.dispatch('month_end')(day)) }}
{%- endmacro %}

{% macro default__month_end(day) -%}
    {{ dbt.last_day(day, 'month') }}
{%- endmacro %}

{% macro duckdb__month_end(day) -%}
    {#- Native, where dbt's form is date arithmetic over every license month. -#}
    last_day({{ day }})
{%- endmacro %}


{% macro add_months(day, months) -%}
    {#- day + n calendar months, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29),
        as both engines add a month interval. -#}
    cast({{ dbt.dateadd('month', 'cast(' ~ months ~ ' as integer)', day) }} as date)
{%- endmacro %}


{% macro month_boundaries(start_date, end_date) -%}
    {#- Month boundaries crossed from start to end (Jan 31 -> Feb 1 is 1), an integer. -#}
    cast({{ dbt.datediff(start_date, end_date, 'month') }} as integer)
{%- endmacro %}


{% macro months_from_to(first_month, last_month) -%}
    {#- One row per month from first_month to last_month (both first days), each a DATE: a
        set-returning expression for a select list. -#}
    {{ return(adapter.dispatch('months_from_to')(first_month, last_month)) }}
{%- endmacro %}

{% macro default__months_from_to(first_month, last_month) -%}
    cast(generate_series(
        cast({{ first_month }} as timestamp),
        cast({{ last_month }} as timestamp),
        interval '1 month'
    ) as date)
{%- endmacro %}

{% macro duckdb__months_from_to(first_month, last_month) -%}
    {#- DuckDB's generate_series returns a list: unnested, it gives the rows. -#}
    cast(unnest(generate_series(
        cast({{ first_month }} as timestamp),
        cast({{ last_month }} as timestamp),
        interval 1 month
    )) as date)
{%- endmacro %}


{% macro numbers_from_to(first, last) -%}
    {#- One row per whole number from first to last (none when last < first), each a BIGINT: a
        set-returning expression for a select list. -#}
    {{ return(adapter.dispatch('numbers_from_to')(first, last)) }}
{%- endmacro %}

{% macro default__numbers_from_to(first, last) -%}
    generate_series(cast({{ first }} as bigint), cast({{ last }} as bigint))
{%- endmacro %}

{% macro duckdb__numbers_from_to(first, last) -%}
    unnest(generate_series(cast({{ first }} as bigint), cast({{ last }} as bigint)))
{%- endmacro %}

{% macro distinct_on(partition_by) -%}
    {#- With distinct_on_order at the end of the select: one row per partition_by, the first in
        the order given. At the head of the select list. -#}
    {{ return(adapter.dispatch('distinct_on')(partition_by)) }}
{%- endmacro %}

{% macro default__distinct_on(partition_by) -%}
    distinct on ({{ partition_by }})
{%- endmacro %}

{% macro duckdb__distinct_on(partition_by) -%}
    {#- Nothing here: distinct_on_order ranks the rows. -#}
{%- endmacro %}


{% macro distinct_on_order(partition_by, order_by=none) -%}
    {#- In place of the select's order by: the order within a partition (its first row is kept),
        as order_by or as the body of a call block:
        `{% call distinct_on_order('k') %} d desc, e asc {% endcall %}`. -#}
    {%- set order_by = (order_by if order_by is not none else caller()).split() | join(' ') -%}
    {{ return(adapter.dispatch('distinct_on_order')(partition_by, order_by)) }}
{%- endmacro %}

{% macro default__distinct_on_order(partition_by, order_by) -%}
    order by {{ partition_by }}, {{ order_by }}
{%- endmacro %}

{% macro duckdb__distinct_on_order(partition_by, order_by) -%}
    {#- DuckDB runs `distinct on ... order by` as one ordered aggregate per column and group,
        which buffers every row: stg_marketplace__licenses took 960 MB for 104k licenses (out of
        memory under the 1 GB cap); a row number over the partition, 280 MB. -#}
    qualify row_number() over (partition by {{ partition_by }} order by {{ order_by }}) = 1
{%- endmacro %}

{% macro try_cast(expression, data_type) -%}
    {#- cast(expression as data_type), null where the value does not parse ("NA" in a date
        field). data_type: date, timestamp or integer. -#}
    {{ return(adapter.dispatch('try_cast')(expression, data_type)) }}
{%- endmacro %}

{% macro default__try_cast(expression, data_type) -%}
    {{ dbt.safe_cast(expression, data_type) }}
{%- endmacro %}

{% macro duckdb__try_cast(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}

{% macro postgres__try_cast(expression, data_type) -%}
    {#- Postgres has no try_cast and a failed cast fails the query: cast only text that has the
        type's shape. A timestamp with an offset is read at that offset, then given in UTC. -#}
    {%- set shapes = {
        'date': '^ *[0-9]{4}-[0-9]{2}-[0-9]{2}',
        'timestamp': '^ *[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}',
        'integer': '^ *[+-]?[0-9]{1,9} *$',
    } -%}
    {%- if data_type not in shapes -%}
        {{ exceptions.raise_compiler_error("try_cast knows no shape for the type " ~ data_type) }}
    {%- endif -%}
    {%- set text = 'cast(' ~ expression ~ ' as varchar)' -%}
    case
        when {{ text }} ~ '{{ shapes[data_type] }}'
            then
                {%- if data_type == 'timestamp' %}
                    cast({{ text }} as timestamptz) at time zone 'UTC'
                {%- else %}
                    cast({{ text }} as {{ data_type }})
                {%- endif %}
    end
{%- endmacro %}


{% macro arg_max(value, order_by, where=none) -%}
    {#- An aggregate: the value of the row with the greatest order_by (one expression, or a
        list compared left to right), among rows with order_by set and `where` true. -#}
    {{ return(adapter.dispatch('arg_max')(value, order_by, where)) }}
{%- endmacro %}

{% macro default__arg_max(value, order_by, where) -%}
    {%- set keys = [order_by] if order_by is string else order_by -%}
    {%- set conditions = [] -%}
    {%- for key in keys -%}
        {%- do conditions.append(key ~ ' is not null') -%}
    {%- endfor -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    (array_agg({{ value }} order by {{ keys | join(' desc, ') }} desc) filter (
        where {{ conditions | join(' and ') }}
    ))[1]
{%- endmacro %}

{% macro duckdb__arg_max(value, order_by, where) -%}
    {#- Native: one pass, no array per group. -#}
    {%- set key = order_by if order_by is string else '(' ~ order_by | join(', ') ~ ')' -%}
    arg_max({{ value }}, {{ key }})
    {%- if where %} filter (where {{ where }}){% endif -%}
{%- endmacro %}


{% macro first_non_null(expression, window) -%}
    {#- A window function: the first non-null value of expression in the named window's frame. -#}
    {{ return(adapter.dispatch('first_non_null')(expression, window)) }}
{%- endmacro %}

{% macro default__first_non_null(expression, window) -%}
    first_value({{ expression }} ignore nulls) over {{ window }}
{%- endmacro %}

{% macro postgres__first_non_null(expression, window) -%}
    {#- Postgres has no IGNORE NULLS: the frame's non-null values in order, the first of them. -#}
    (array_agg({{ expression }}) filter (where {{ expression }} is not null) over {{ window }})[1]
{%- endmacro %}


{% macro text_key(expression) -%}
    {#- Text compared character by character (code points), as the ground truth and DuckDB do,
        whatever collation the database was created with (en_US would sort 'a-2' after 'a1'). -#}
    {{ return(adapter.dispatch('text_key')(expression)) }}
{%- endmacro %}

{% macro default__text_key(expression) -%}
    cast({{ expression }} as varchar)
{%- endmacro %}

{% macro postgres__text_key(expression) -%}
    cast({{ expression }} as varchar) collate "C"
{%- endmacro %}


{% macro before_table_build() -%}
    {#- A pre-hook of every table model: the session settings its build needs. -#}
    {{ return(adapter.dispatch('before_table_build')()) }}
{%- endmacro %}

{% macro default__before_table_build() -%}
{%- endmacro %}

{% macro postgres__before_table_build() -%}
    {#- Postgres guesses 1000 rows for each generate_series, so the month models look costly
        enough to JIT-compile: int_license_days_valued took 8.1 s with JIT, 0.8 s without (small
        vendor). And it guesses one row for a join on vendor_id with the one-row-per-vendor
        as_of table, then nests a loop over a whole window pipeline per row: the same model ran
        over 6 minutes, 55 ms without nested loops. Our tables have no indexes, so a nested loop
        never pays. For this transaction only. -#}
    set local jit = off; set local enable_nestloop = off
{%- endmacro %}


{% macro after_table_build(relation) -%}
    {#- A post-hook of every table model: what the next models' plans need of it. -#}
    {{ return(adapter.dispatch('after_table_build')(relation)) }}
{%- endmacro %}

{% macro default__after_table_build(relation) -%}
{%- endmacro %}

{% macro postgres__after_table_build(relation) -%}
    {#- Statistics now, not when autovacuum gets to the new table: planned without them, the
        next model joined the wrong way round (int_license_days_valued ran for over 5 minutes
        instead of a second on the small vendor). -#}
    analyze {{ relation }}
{%- endmacro %}
