{%- set relation = source('raw_marketplace', 'metric_aggregates') -%}
{%- set columns = raw_columns(relation) -%}

with

source as (

    select * from {{ raw_table(relation, columns) }}

),

renamed as (

    select
        {{ text_or_null(columns, 'vendor_id') }} as vendor_id,
        lower({{ text_or_null(columns, 'metric') }}) as metric,
        lower({{ text_or_null(columns, 'aggregation') }}) as aggregation,
        {{ date_or_null(columns, 'period_start') }} as period_start_date,
        {{ text_or_null(columns, 'addon_key') }} as addon_key,
        {{ text_or_null(columns, 'billing_period') }} as billing_period,
        {{ text_or_null(columns, 'conversion_type') }} as conversion_type,
        {{ text_or_null(columns, 'series') }} as series,
        {{ column_or_null(columns, 'count', 'bigint') }} as event_count,
        {{ text_or_null(columns, '_dlt_load_id') }} as dlt_load_id

    from source

),

deduplicated as (

    -- Each run re-reads Atlassian's figures; the latest load wins.
    select {{ distinct_on('vendor_id, metric, aggregation, period_start_date, addon_key, billing_period, conversion_type, series') }} *
    from renamed
    {% call distinct_on_order('vendor_id, metric, aggregation, period_start_date, addon_key, billing_period, conversion_type, series') %}
        dlt_load_id desc
    {% endcall %}

),

final as (

    select * from deduplicated

)

select * from final
