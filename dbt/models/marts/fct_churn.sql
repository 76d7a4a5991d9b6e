-- Cloud churn per month of term end, app and billing period (METRICS.md).

with

opportunities as (

    select * from {{ ref('int_renewal_opportunities_resolved') }}

),

aggregated as (

    select
        month,
        addon_key,
        billing_period,
        count(*) filter (outcome = 'cancelled') as cancellations,
        count(*) filter (outcome = 'renewed') as renewals,
        count(*) filter (outcome = 'pending') as pending
    from opportunities
    group by month, addon_key, billing_period

),

final as (

    select
        month,
        addon_key,
        billing_period,
        renewals + cancellations as opportunities,
        cancellations,
        pending,
        cancellations / nullif(renewals + cancellations, 0) as churn_rate
    from aggregated

)

select * from final
