-- The day the data describes (METRICS.md): the as_of_date var, else the latest lastUpdated of
-- the licenses and transactions, but never after the latest load day by the API's clock: one
-- record dated in the future must not turn pending renewals into cancellations.
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

    select max(last_updated_date) as last_updated_date from updates

),

final as (

    select
        coalesce(
            cast({{ as_of_literal }} as date),
            -- least() skips a null: no load day recorded yet leaves the latest lastUpdated.
            least(latest.last_updated_date, load_days.load_day),
            current_date
        ) as as_of_date,
        {{ 'true' if as_of_var else 'false' }} as is_set_by_var
    from latest
    cross join load_days

)

select * from final
