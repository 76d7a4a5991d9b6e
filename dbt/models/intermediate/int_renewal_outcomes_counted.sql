-- Renewal opportunities counted by outcome, per month of term end, app and billing period: the
-- one count that fct_churn and fct_renewal both divide (METRICS.md).

with

opportunities as (

    select * from {{ ref('int_renewal_opportunities_resolved') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

counted as (

    select
        vendor_id,
        month,
        addon_key,
        billing_period,
        count(*) filter (where outcome = 'renewed') as renewals,
        count(*) filter (where outcome = 'cancelled') as cancellations,
        count(*) filter (where outcome = 'pending') as pending
    from opportunities
    group by vendor_id, month, addon_key, billing_period

),

final as (

    select
        counted.vendor_id,
        counted.month,
        counted.addon_key,
        counted.billing_period,
        counted.renewals + counted.cancellations as opportunities,
        counted.renewals,
        counted.cancellations,
        counted.pending,
        -- v2: no outcome of the month can still change
        {{ month_end('counted.month') }} + {{ var('grace_days') }} <= as_of.as_of_date as is_complete
    from counted
    inner join as_of on counted.vendor_id = as_of.vendor_id

)

select * from final
