{%- set relation = source('raw_marketplace', 'metric_events') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ text_or_null(columns, 'row_hash') }} as metric_event_id,
        lower({{ text_or_null(columns, 'metric') }}) as metric,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'addon_name') }} as addon_name,
        {{ text_or_null(columns, 'hosting') }} as hosting,
        {{ text_or_null(columns, 'app_edition') }} as app_edition,
        {{ text_or_null(columns, 'transaction_id') }} as transaction_id,
        {{ text_or_null(columns, 'in_grace_period') }} as in_grace_period,
        {{ text_or_null(columns, 'license_details__license_id') }} as license_id,
        {{ text_or_null(columns, 'license_details__app_entitlement_id') }} as app_entitlement_id,
        {{ text_or_null(columns, 'license_details__app_entitlement_number') }}
            as app_entitlement_number,
        {{ text_or_null(columns, 'license_details__cloud_id') }} as cloud_id,
        {{ column_or_null(columns, 'license_details__months_valid', 'integer') }} as months_valid,
        {{ date_or_null(columns, 'license_details__maintenance_start_date') }}
            as maintenance_start_date,
        {{ date_or_null(columns, 'license_details__maintenance_end_date') }}
            as maintenance_end_date,
        {{ date_or_null(columns, 'event_date') }} as event_date,
        {{ date_or_null(columns, 'last_updated') }} as last_updated_date,
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id

    from source

),

deduplicated as (

    select {{ distinct_on('vendor_id, metric_event_id') }} *
    from renamed
    {% call distinct_on_order('vendor_id, metric_event_id') %}
        dlt_load_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
