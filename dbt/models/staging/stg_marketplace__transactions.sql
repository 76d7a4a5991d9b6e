{%- set relation = source('raw_marketplace', 'transactions') -%}
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
        {{ text_or_null(columns, 'transaction_id') }} as transaction_id,
        {{ text_or_null(columns, 'transaction_line_item_id') }} as transaction_line_item_id,
        {{ license_key(
            text_or_null(columns, 'purchase_details__hosting'),
            text_or_null(columns, 'app_entitlement_id'),
            text_or_null(columns, 'addon_license_id')
        ) }} as license_key,
        {{ text_or_null(columns, 'license_key') }} as loader_license_key,
        {{ text_or_null(columns, 'addon_license_id') }} as addon_license_id,
        {{ text_or_null(columns, 'app_entitlement_id') }} as app_entitlement_id,
        {{ text_or_null(columns, 'app_entitlement_number') }} as app_entitlement_number,
        {{ text_or_null(columns, 'license_id') }} as license_id,
        {{ text_or_null(columns, 'host_license_id') }} as host_license_id,
        {{ text_or_null(columns, 'cloud_id') }} as cloud_id,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'addon_name') }} as addon_name,
        {{ text_or_null(columns, 'product_id') }} as product_id,

        -- purchase
        {{ text_or_null(columns, 'purchase_details__sale_type') }} as sale_type,
        {{ text_or_null(columns, 'purchase_details__hosting') }} as hosting,
        {{ text_or_null(columns, 'purchase_details__billing_period') }} as billing_period,
        upper({{ text_or_null(columns, 'purchase_details__license_type') }}) as license_type,
        {{ text_or_null(columns, 'purchase_details__tier') }} as tier,
        {{ text_or_null(columns, 'purchase_details__change_in_tier') }} as change_in_tier,
        {{ text_or_null(columns, 'purchase_details__old_tier') }} as old_tier,
        {{ text_or_null(columns, 'purchase_details__change_in_billing_period') }} = 'Yes'
            as is_billing_period_changed,
        {{ text_or_null(columns, 'purchase_details__old_billing_period') }} as old_billing_period,
        -- top-level appEdition, else the one inside purchaseDetails (exact rule 4)
        coalesce(
            {{ text_or_null(columns, 'app_edition') }},
            {{ text_or_null(columns, 'purchase_details__app_edition') }}
        ) as app_edition,
        {{ text_or_null(columns, 'payment_status') }} as payment_status,
        {{ text_or_null(columns, 'purchase_details__payment_terms') }} as payment_terms,
        coalesce({{ column_or_null(columns, 'is_invoice_manual', 'boolean') }}, false)
            as is_invoice_manual,
        {{ text_or_null(columns, 'license_level') }} as license_level,
        {{ text_or_null(columns, 'purchase_details__refund_reason') }} as refund_reason,
        {{ text_or_null(columns, 'purchase_details__credit_note_reason') }} as credit_note_reason,
        {{ text_or_null(
            columns, 'purchase_details__original_transaction_details__transaction_id'
        ) }} as original_transaction_id,
        {{ date_or_null(columns, 'purchase_details__original_transaction_details__sale_date') }}
            as original_sale_date,
        {{ text_or_null(columns, 'purchase_details__parent_product_name') }}
            as parent_product_name,
        {{ text_or_null(columns, 'purchase_details__parent_product_edition') }}
            as parent_product_edition,

        -- amounts (USD; the API sends cents as floats, so two decimals are exact)
        {{ column_or_null(columns, 'purchase_details__purchase_price', 'decimal(18, 2)') }}
            as purchase_price,
        {{ column_or_null(columns, 'purchase_details__vendor_amount', 'decimal(18, 2)') }}
            as vendor_amount,
        {{ column_or_null(columns, 'purchase_details__partner_discount_amount', 'decimal(18, 2)') }}
            as partner_discount_amount,

        -- customer and partner
        {{ text_or_null(columns, 'customer_details__company') }} as company,
        {{ text_or_null(columns, 'customer_details__country') }} as country,
        {{ text_or_null(columns, 'customer_details__region') }} as region,
        {{ text_or_null(columns, 'partner_details__partner_name') }} as partner_name,
        {{ text_or_null(columns, 'partner_details__partner_type') }} as partner_type,

        -- dates
        {{ date_or_null(columns, 'purchase_details__sale_date') }} as sale_date,
        {{ date_or_null(columns, 'purchase_details__maintenance_start_date') }}
            as maintenance_start_date,
        {{ date_or_null(columns, 'purchase_details__maintenance_end_date') }}
            as maintenance_end_date,
        {{ date_or_null(columns, 'last_updated') }} as last_updated_date,

        -- load metadata: the discounts child table points at _dlt_id
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id,
        {{ text_or_null(columns, '_dlt_id') }} as transaction_row_id

    from source

),

deduplicated as (

    -- A line is (transaction_id, transaction_line_item_id); exports can repeat it.
    select {{ distinct_on('vendor_id, transaction_id, transaction_line_item_id') }} *
    from renamed
    {% call distinct_on_order('vendor_id, transaction_id, transaction_line_item_id') %}
        last_updated_date desc nulls last,
        dlt_load_id desc,
        transaction_row_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
