-- Marketing touches before an evaluation started, with the license they led to when known.

with

attribution as (

    select * from {{ ref('stg_marketplace__marketing_attribution') }}

),

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

final as (

    select
        attribution.vendor_id,
        attribution.attribution_id,
        attribution.event_at,
        cast(attribution.event_at as date) as event_date,
        attribution.addon_key,
        licenses.license_key,
        attribution.license_key is not null
        and licenses.license_key is not null as has_license,
        attribution.channel,
        attribution.referrer_domain,
        attribution.campaign_source,
        attribution.campaign_medium,
        attribution.campaign_name,
        attribution.campaign_content,
        attribution.marketplace_url,
        attribution.user_id,
        attribution.user_type,
        attribution.addon_license_id,
        attribution.app_entitlement_id,
        attribution.app_entitlement_number
    from attribution
    left join licenses
        on
            attribution.vendor_id = licenses.vendor_id
            and attribution.license_key = licenses.license_key

)

select * from final
