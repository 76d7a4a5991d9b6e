{#- dlt creates a column only once some record carries the field, and adds the scd2 columns only
    when a table is loaded with the scd2 strategy. Staging therefore reads the raw table's actual
    columns and fills the missing ones with typed nulls, so the models build on any load. -#}

{% macro raw_columns(relation) -%}
    {#- Lower-case names of the relation's columns; empty while dbt only parses. -#}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do names.append(column.name | lower) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{% macro column_or_null(columns, name, data_type) -%}
    {#- `cast(name as data_type)` when the raw table has the column, a typed null otherwise. -#}
    {%- if name in columns -%}
        cast({{ adapter.quote(name) }} as {{ data_type }})
    {%- else -%}
        cast(null as {{ data_type }})
    {%- endif -%}
{%- endmacro %}


{% macro text_or_null(columns, name) -%}
    {#- A text column with empty strings read as missing (the API sends "" for some absent ids). -#}
    nullif(trim({{ column_or_null(columns, name, 'varchar') }}), '')
{%- endmacro %}


{% macro is_current_version(columns) -%}
    {#- scd2 tables keep every version of a record; the current one has no _dlt_valid_to. -#}
    {%- if '_dlt_valid_to' in columns -%}
        _dlt_valid_to is null
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{% macro date_or_null(columns, name) -%}
    {#- A DATE from an ISO date string, a timestamp or a date; null when absent or not a date
        (data-insight fields such as evaluationStartDate may say "NA"). -#}
    {%- if name in columns -%}
        {{ try_cast(adapter.quote(name), 'date') }}
    {%- else -%}
        cast(null as date)
    {%- endif -%}
{%- endmacro %}


{% macro raw_table(relation, columns) -%}
    {#- The raw table, or no rows when it does not exist: a run limited to some resources
        (`mpac run --resources ...`) creates only their tables, and the marts still build. -#}
    {%- if columns -%}
        {{ relation }}
    {%- else -%}
        (select 1 as no_rows where false) as missing_raw_table
    {%- endif -%}
{%- endmacro %}
