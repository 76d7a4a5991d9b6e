{#- A model's row-level assertions in one query, one scan: columns that must not be null
    (dbt's not_null), columns whose non-null values must be in a list (accepted_values: a null
    passes, as in dbt's test) and SQL expressions that must be true (expression_is_true: false
    or null fails). Fails with one row per assertion that some row breaks: the column (null for
    an expression), the assertion and how many rows break it. One dbt node per model instead of
    one per column and assertion (DECISIONLOG, "Fewer dbt nodes"). -#}
{% test row_assertions(model, not_null=[], accepted_values={}, expressions=[]) %}

{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append((column, 'not null', column ~ ' is null')) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set quoted = [] -%}
    {%- for value in values -%}
        {%- do quoted.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {%- set listed = quoted | join(', ') -%}
    {%- do checks.append((column, 'in (' ~ listed ~ ')', column ~ ' not in (' ~ listed ~ ')')) -%}
{%- endfor -%}
{%- for expression in expressions -%}
    {%- set shown = expression.split() | join(' ') -%}
    {%- do checks.append((none, shown, 'not coalesce((' ~ expression ~ '), false)')) -%}
{%- endfor -%}
{%- if not checks -%}
    {{ exceptions.raise_compiler_error("row_assertions on " ~ model ~ " asserts nothing") }}
{%- endif %}

with

counted as (

    select
        {% for column, assertion, breaks in checks %}
        sum(case when {{ breaks }} then 1 else 0 end) as broken_{{ loop.index }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ model }}

),

broken as (

    {% for column, assertion, breaks in checks %}
    select
        cast({{ "'" ~ column ~ "'" if column else "null" }} as {{ dbt.type_string() }})
            as column_name,
        cast('{{ assertion | replace("'", "''") }}' as {{ dbt.type_string() }}) as assertion,
        broken_{{ loop.index }} as failing_rows
    from counted
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select * from broken
    where failing_rows > 0

)

select * from final

{% endtest %}
