-- Cloud evaluations and their conversions per month of evaluation start, app and conversion type.

with

evaluations as (

    select * from {{ ref('int_evaluations_resolved') }}

),

aggregated as (

    select
        vendor_id,
        month,
        addon_key,
        conversion_type,
        count(*) as evaluations,
        count(*) filter (where is_converted) as conversions,
        count(*) filter (where is_open) as open_evaluations,
        count(*) filter (where is_returning_customer) as returning_evaluations,
        -- the median, interpolated: DuckDB's median() is this ordered-set aggregate
        percentile_cont(0.5) within group (order by days_to_convert) as median_days_to_convert
    from evaluations
    group by vendor_id, month, addon_key, conversion_type

),

final as (

    select
        vendor_id,
        month,
        addon_key,
        conversion_type,
        evaluations,
        conversions,
        open_evaluations,
        {{ safe_ratio('conversions', 'evaluations') }} as conversion_rate,
        cast(median_days_to_convert as double precision) as median_days_to_convert,
        returning_evaluations,
        -- v2: no evaluation of the row can still convert
        open_evaluations = 0 as is_complete
    from aggregated

)

select * from final
