{%- set relation = source('raw_marketplace', 'transactions__purchase_details__discounts') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ text_or_null(columns, '_dlt_id') }} as discount_row_id,
        -- the transaction line version this discount belongs to
        {{ text_or_null(columns, '_dlt_parent_id') }} as transaction_row_id,
        {{ column_or_null(columns, '_dlt_list_idx', 'integer') }} as discount_index,
        upper({{ text_or_null(columns, 'type') }}) as discount_type,
        {{ column_or_null(columns, 'amount', 'decimal(18, 2)') }} as discount_amount,
        {{ text_or_null(columns, 'code') }} as discount_code,
        {{ text_or_null(columns, 'reason') }} as discount_reason

    from source

),

final as (

    select * from renamed

)

select * from final
