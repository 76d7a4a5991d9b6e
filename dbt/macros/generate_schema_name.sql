{#- Schemas are exactly staging, intermediate and marts: other tools query them by name, so the
    default "<target schema>_<custom schema>" prefix would break them. On Postgres a build goes
    into "<schema>__next" (MPAC_SCHEMA_SUFFIX), swapped in whole afterwards (destinations.py). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}{{ env_var('MPAC_SCHEMA_SUFFIX', '') }}
    {%- endif -%}
{%- endmacro %}
