-- Every app seen in any report, with its latest display name and how many licenses it has.

with

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select * from {{ ref('stg_marketplace__transactions') }}

),

feedback as (

    select * from {{ ref('stg_marketplace__feedback') }}

),

attribution as (

    select * from {{ ref('stg_marketplace__marketing_attribution') }}

),

aggregates as (

    select * from {{ ref('stg_marketplace__metric_aggregates') }}

),

named as (

    select
        vendor_id,
        addon_key,
        addon_name,
        product_id,
        last_updated_date as seen_date
    from licenses
    union all
    select
        vendor_id,
        addon_key,
        addon_name,
        product_id,
        last_updated_date as seen_date
    from transactions
    union all
    select
        vendor_id,
        addon_key,
        addon_name,
        product_id,
        feedback_date as seen_date
    from feedback
    union all
    select
        vendor_id,
        addon_key,
        null as addon_name,
        product_id,
        cast(event_at as date) as seen_date
    from attribution
    union all
    select
        vendor_id,
        addon_key,
        null as addon_name,
        null as product_id,
        period_start_date as seen_date
    from aggregates

),

app_names as (

    select
        vendor_id,
        addon_key,
        -- the latest name wins: apps get renamed
        {{ arg_max('addon_name', 'seen_date', where='addon_name is not null') }} as addon_name,
        {{ arg_max('product_id', 'seen_date', where='product_id is not null') }} as product_id
    from named
    where addon_key is not null
    group by vendor_id, addon_key

),

license_counts as (

    select
        vendor_id,
        addon_key,
        count(*) as licenses,
        count(*) filter (where hosting = 'Cloud') as cloud_licenses,
        count(*) filter (where hosting = 'Server') as server_licenses,
        count(*) filter (where hosting = 'Data Center') as data_center_licenses
    from licenses
    group by vendor_id, addon_key

),

final as (

    select
        app_names.vendor_id,
        app_names.addon_key,
        coalesce(app_names.addon_name, app_names.addon_key) as addon_name,
        app_names.product_id,
        coalesce(license_counts.licenses, 0) as licenses,
        coalesce(license_counts.cloud_licenses, 0) as cloud_licenses,
        coalesce(license_counts.server_licenses, 0) as server_licenses,
        coalesce(license_counts.data_center_licenses, 0) as data_center_licenses
    from app_names
    left join license_counts
        on
            app_names.vendor_id = license_counts.vendor_id
            and app_names.addon_key = license_counts.addon_key

)

select * from final
