{%- set relation = source('raw_marketplace', 'licenses') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}
    where {{ is_current_version(columns) }}

),

renamed as (

    select
        -- ids
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ license_key(
            text_or_null(columns, 'hosting'),
            text_or_null(columns, 'app_entitlement_id'),
            text_or_null(columns, 'addon_license_id'),
        ) }} as license_key,
        {{ text_or_null(columns, 'license_key') }} as loader_license_key,
        {{ text_or_null(columns, 'addon_license_id') }} as addon_license_id,
        {{ text_or_null(columns, 'app_entitlement_id') }} as app_entitlement_id,
        {{ text_or_null(columns, 'app_entitlement_number') }} as app_entitlement_number,
        {{ text_or_null(columns, 'license_id') }} as license_id,
        {{ text_or_null(columns, 'host_license_id') }} as host_license_id,
        {{ text_or_null(columns, 'host_entitlement_id') }} as host_entitlement_id,
        {{ text_or_null(columns, 'host_entitlement_number') }} as host_entitlement_number,
        {{ text_or_null(columns, 'cloud_id') }} as cloud_id,
        {{ text_or_null(columns, 'cloud_site_hostname') }} as cloud_site_hostname,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'addon_name') }} as addon_name,
        {{ text_or_null(columns, 'product_id') }} as product_id,

        -- license
        {{ text_or_null(columns, 'hosting') }} as hosting,
        {{ text_or_null(columns, 'app_edition') }} as app_edition,
        upper({{ text_or_null(columns, 'license_type') }}) as license_type,
        {{ text_or_null(columns, 'status') }} as license_status,
        {{ text_or_null(columns, 'tier') }} as tier,
        {{ text_or_null(columns, 'license_level') }} as license_level,
        {{ text_or_null(columns, 'license_source_type') }} as license_source_type,
        {{ text_or_null(columns, 'extended_server_support') }} as extended_server_support,
        {{ text_or_null(columns, 'is_new_billing_system') }} = 'Yes' as is_new_billing_system,
        {{ text_or_null(columns, 'in_grace_period') }} = 'Yes' as is_in_grace_period,

        -- evaluation (data insights)
        {{ date_or_null(columns, 'evaluation_start_date') }} as evaluation_start_date,
        {{ date_or_null(columns, 'evaluation_end_date') }} as evaluation_end_date,
        {{ date_or_null(columns, 'evaluation_sale_date') }} as evaluation_sale_date,
        {{ text_or_null(columns, 'evaluation_license') }} as evaluation_license_id,
        {{ text_or_null(columns, 'evaluation_opportunity_size') }} as evaluation_opportunity_size,
        {{ try_cast(text_or_null(columns, 'days_to_convert_eval'), 'integer') }}
            as days_to_convert_eval,
        {{ date_or_null(columns, 'latest_evaluation_start_date') }}
            as latest_evaluation_start_date,
        {{ date_or_null(columns, 'upgrade_evaluation_start_date') }}
            as upgrade_evaluation_start_date,
        {{ text_or_null(columns, 'upgrade_evaluating_edition') }} as upgrade_evaluating_edition,

        -- Cloud migration (cmtDetails): the Server / Data Center license this one migrates
        {{ text_or_null(columns, 'cmt_details__status') }} as cmt_status,
        {{ text_or_null(columns, 'cmt_details__related_on_prem_license') }}
            as related_on_prem_license,

        -- parent product
        {{ text_or_null(columns, 'parent_product_name') }} as parent_product_name,
        {{ text_or_null(columns, 'parent_product_edition') }} as parent_product_edition,
        {{ text_or_null(columns, 'parent_product_billing_cycle') }}
            as parent_product_billing_cycle,
        {{ text_or_null(columns, 'installed_on_sandbox') }} as installed_on_sandbox,

        -- customer and partner
        {{ text_or_null(columns, 'contact_details__company') }} as company,
        {{ text_or_null(columns, 'contact_details__country') }} as country,
        {{ text_or_null(columns, 'contact_details__region') }} as region,
        {{ text_or_null(columns, 'contact_details__technical_contact__email') }}
            as technical_contact_email,
        {{ text_or_null(columns, 'contact_details__technical_contact__name') }}
            as technical_contact_name,
        {{ text_or_null(columns, 'contact_details__billing_contact__email') }}
            as billing_contact_email,
        {{ text_or_null(columns, 'contact_details__billing_contact__name') }}
            as billing_contact_name,
        {{ text_or_null(columns, 'partner_details__partner_name') }} as partner_name,
        {{ text_or_null(columns, 'partner_details__partner_type') }} as partner_type,

        -- attribution
        {{ text_or_null(columns, 'attribution__channel') }} as attribution_channel,
        {{ text_or_null(columns, 'attribution__referrer_domain') }} as attribution_referrer_domain,
        {{ text_or_null(columns, 'attribution__campaign_source') }} as attribution_campaign_source,
        {{ text_or_null(columns, 'attribution__campaign_medium') }} as attribution_campaign_medium,
        {{ text_or_null(columns, 'attribution__campaign_name') }} as attribution_campaign_name,
        {{ text_or_null(columns, 'attribution__campaign_content') }}
            as attribution_campaign_content,

        -- dates
        {{ date_or_null(columns, 'maintenance_start_date') }} as maintenance_start_date,
        {{ date_or_null(columns, 'maintenance_end_date') }} as maintenance_end_date,
        {{ date_or_null(columns, 'last_updated') }} as last_updated_date,

        -- load metadata
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id,
        {{ text_or_null(columns, '_dlt_id') }} as license_row_id

    from source

),

deduplicated as (

    -- The API repeats some licenses (around the data-insights split, Atlassian bug MP-557): keep
    -- the latest version, preferring the copy that carries the data-insight fields.
    select {{ distinct_on('vendor_id, license_key') }} *
    from renamed
    {% call distinct_on_order('vendor_id, license_key') %}
        last_updated_date desc nulls last,
        evaluation_opportunity_size is not null desc,
        dlt_load_id desc,
        license_row_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
