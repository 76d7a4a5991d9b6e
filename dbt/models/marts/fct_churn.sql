-- Cloud churn per month of term end, app and billing period (METRICS.md).

with

outcomes as (

    select * from {{ ref('int_renewal_outcomes_counted') }}

),

final as (

    select
        vendor_id,
        month,
        addon_key,
        billing_period,
        opportunities,
        cancellations,
        pending,
        {{ safe_ratio('cancellations', 'opportunities') }} as churn_rate,
        is_complete
    from outcomes

)

select * from final
