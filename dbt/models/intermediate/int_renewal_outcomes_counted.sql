-- Renewal opportunities counted by outcome, per month of term end, app and billing period: the
-- one count that fct_churn and fct_renewal both divide (METRICS.md).

with

opportunities as (

    select * from {{ ref('int_renewal_opportunities_resolved') }}

),

counted as (

    select
        month,
        addon_key,
        billing_period,
        count(*) filter (outcome = 'renewed') as renewals,
        count(*) filter (outcome = 'cancelled') as cancellations,
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
        renewals,
        cancellations,
        pending
    from counted

)

select * from final
