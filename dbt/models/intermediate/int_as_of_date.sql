-- The day the data describes (METRICS.md): the as_of_date var, else the latest lastUpdated of
-- the licenses and transactions.
{%- set as_of_var = var('as_of_date') %}
{%- set as_of_literal = "'" ~ as_of_var ~ "'" if as_of_var else 'null' %}

with

licenses as (

    select last_updated_date from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select last_updated_date from {{ ref('stg_marketplace__transactions') }}

),

updates as (

    select * from licenses
    union all
    select * from transactions

),

final as (

    select
        coalesce(
            cast({{ as_of_literal }} as date),
            max(last_updated_date),
            current_date
        ) as as_of_date,
        {{ 'true' if as_of_var else 'false' }} as is_set_by_var
    from updates

)

select * from final
