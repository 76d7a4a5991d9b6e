-- The day the data describes (METRICS.md): the as_of_date var, else the latest lastUpdated of
-- the licenses and transactions on or before the latest load day by the API's clock: one record
-- dated in the future must not move it and turn pending renewals into cancellations.
{%- set as_of_var = var('as_of_date') %}
{%- set as_of_literal = "'" ~ as_of_var ~ "'" if as_of_var else 'null' %}

with

licenses as (

    select last_updated_date from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select last_updated_date from {{ ref('stg_marketplace__transactions') }}

),

load_days as (

    select max(load_day) as load_day from {{ ref('stg_marketplace__load_days') }}

),

updates as (

    select * from licenses
    union all
    select * from transactions

),

latest as (

    -- A lastUpdated after the load day cannot be true: it is left out, so it moves nothing
    -- (no load day recorded yet, from a warehouse loaded before runs kept it: all count).
    select max(updates.last_updated_date) as last_updated_date
    from updates
    cross join load_days
    where
        load_days.load_day is null
        or updates.last_updated_date <= load_days.load_day

),

final as (

    select
        coalesce(
            cast({{ as_of_literal }} as date),
            latest.last_updated_date,
            load_days.load_day,
            current_date
        ) as as_of_date,
        {{ 'true' if as_of_var else 'false' }} as is_set_by_var
    from latest
    cross join load_days

)

select * from final
