{%- set relation = source('raw_marketplace', 'feedback') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ text_or_null(columns, 'row_hash') }} as feedback_id,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'addon_name') }} as addon_name,
        {{ text_or_null(columns, 'addon_version') }} as addon_version,
        {{ text_or_null(columns, 'product_id') }} as product_id,
        {{ text_or_null(columns, 'application_key') }} as application_key,
        {{ text_or_null(columns, 'application_version') }} as application_version,
        {{ text_or_null(columns, 'hosting') }} as hosting,
        {{ text_or_null(columns, 'app_edition') }} as app_edition,
        lower({{ text_or_null(columns, 'feedback_type') }}) as feedback_type,
        {{ text_or_null(columns, 'reason_key') }} as reason_key,
        {{ text_or_null(columns, 'message') }} as message,
        {{ text_or_null(columns, 'email') }} as email,
        {{ text_or_null(columns, 'full_name') }} as full_name,
        {{ text_or_null(columns, 'license_id') }} as license_id,
        {{ text_or_null(columns, 'app_entitlement_id') }} as app_entitlement_id,
        {{ text_or_null(columns, 'app_entitlement_number') }} as app_entitlement_number,
        {{ text_or_null(columns, 'cloud_id') }} as cloud_id,
        {{ date_or_null(columns, 'date') }} as feedback_date,
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id

    from source

),

deduplicated as (

    -- No id in the API: the row hash is the key, and a re-read window can load a row twice.
    select {{ distinct_on('vendor_id, feedback_id') }} *
    from renamed
    {% call distinct_on_order('vendor_id, feedback_id') %}
        dlt_load_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
