-- Lists the licenses and transactions whose lastUpdated is after the latest load day by the
-- API's own clock: such a date cannot be true, and int_as_of_date caps as_of_date at the load
-- day so that it moves nothing. A warning, not an error: the marts stay right, the API is odd.
{{ config(severity='warn') }}

with

load_days as (

    select
        vendor_id,
        max(load_day) as load_day
    from {{ ref('stg_marketplace__load_days') }}
    group by vendor_id

),

licenses as (

    select
        vendor_id,
        'license' as record_type,
        license_key as record_key,
        last_updated_date
    from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select
        vendor_id,
        'transaction' as record_type,
        transaction_id || '|' || transaction_line_item_id as record_key,
        last_updated_date
    from {{ ref('stg_marketplace__transactions') }}

),

records as (

    select * from licenses
    union all
    select * from transactions

),

final as (

    select
        records.vendor_id,
        records.record_type,
        records.record_key,
        records.last_updated_date,
        load_days.load_day
    from records
    inner join load_days on records.vendor_id = load_days.vendor_id
    where records.last_updated_date > load_days.load_day

)

select * from final
