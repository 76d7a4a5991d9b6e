-- The day each vendor's data describes (METRICS.md): the as_of_date var, else the latest
-- lastUpdated of the vendor's licenses and transactions on or before its latest load day by the
-- API's clock: one record dated in the future must not move it and turn pending renewals into
-- cancellations. Per vendor: vendors loaded on other days describe other days.
{%- set as_of_var = var('as_of_date') %}
{%- set as_of_literal = "'" ~ as_of_var ~ "'" if as_of_var else 'null' %}

with

licenses as (

    select
        vendor_id,
        last_updated_date
    from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select
        vendor_id,
        last_updated_date
    from {{ ref('stg_marketplace__transactions') }}

),

load_days as (

    select
        vendor_id,
        max(load_day) as load_day
    from {{ ref('stg_marketplace__load_days') }}
    group by vendor_id

),

updates as (

    select * from licenses
    union all
    select * from transactions

),

vendors as (

    select vendor_id from updates
    union
    select vendor_id from load_days

),

latest as (

    -- A lastUpdated after the load day cannot be true: it is left out, so it moves nothing
    -- (no load day recorded yet, from a warehouse loaded before runs kept it: all count).
    select
        updates.vendor_id,
        max(updates.last_updated_date) as last_updated_date
    from updates
    left join load_days on updates.vendor_id = load_days.vendor_id
    where
        load_days.load_day is null
        or updates.last_updated_date <= load_days.load_day
    group by updates.vendor_id

),

final as (

    select
        vendors.vendor_id,
        coalesce(
            cast({{ as_of_literal }} as date),
            latest.last_updated_date,
            load_days.load_day,
            current_date
        ) as as_of_date,
        {{ 'true' if as_of_var else 'false' }} as is_set_by_var
    from vendors
    left join latest on vendors.vendor_id = latest.vendor_id
    left join load_days on vendors.vendor_id = load_days.vendor_id

)

select * from final
