{%- set relation = source('raw_marketplace', 'load_days') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        {{ date_or_null(columns, 'load_day') }} as load_day

    from source

),

final as (

    select distinct
        vendor_id,
        load_day
    from renamed
    where load_day is not null

)

select * from final
