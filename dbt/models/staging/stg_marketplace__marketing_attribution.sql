{%- set relation = source('raw_marketplace', 'marketing_attribution') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ text_or_null(columns, 'row_hash') }} as attribution_id,
        {{ text_or_null(columns, 'addon_license_id') }} as addon_license_id,
        {{ text_or_null(columns, 'app_entitlement_id') }} as app_entitlement_id,
        {{ text_or_null(columns, 'app_entitlement_number') }} as app_entitlement_number,
        -- no hosting on these rows: only Cloud licenses have an appEntitlementId, so this is
        -- METRICS.md's license_key
        coalesce(
            {{ text_or_null(columns, 'app_entitlement_id') }},
            {{ text_or_null(columns, 'addon_license_id') }}
        ) as license_key,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'product_id') }} as product_id,
        {{ text_or_null(columns, 'channel') }} as channel,
        {{ text_or_null(columns, 'referrer_domain') }} as referrer_domain,
        {{ text_or_null(columns, 'marketplace_url') }} as marketplace_url,
        {{ text_or_null(columns, 'campaign_source') }} as campaign_source,
        {{ text_or_null(columns, 'campaign_medium') }} as campaign_medium,
        {{ text_or_null(columns, 'campaign_name') }} as campaign_name,
        {{ text_or_null(columns, 'campaign_content') }} as campaign_content,
        {{ text_or_null(columns, 'user_id') }} as user_id,
        lower({{ text_or_null(columns, 'user_type') }}) as user_type,
        -- UTC; a value that is not a full timestamp keeps its date part
        coalesce(
            {{ try_cast(column_or_null(columns, 'event_timestamp', 'varchar'), 'timestamp') }},
            {{ try_cast(
                'left(' ~ column_or_null(columns, 'event_timestamp', 'varchar') ~ ', 10)', 'date'
            ) }}
        ) as event_at,
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id

    from source

),

deduplicated as (

    select {{ distinct_on('vendor_id, attribution_id') }} *
    from renamed
    {% call distinct_on_order('vendor_id, attribution_id') %}
        dlt_load_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
