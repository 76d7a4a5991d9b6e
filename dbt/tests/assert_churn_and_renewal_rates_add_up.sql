-- METRICS.md: churn_rate + renewal_rate = 1 in every row with opportunities > 0, and both marts
-- count the same opportunities and pending ones.

with

churn as (

    select * from {{ ref('fct_churn') }}

),

renewal as (

    select * from {{ ref('fct_renewal') }}

),

joined as (

    select
        coalesce(churn.vendor_id, renewal.vendor_id) as vendor_id,
        coalesce(churn.month, renewal.month) as month,
        coalesce(churn.addon_key, renewal.addon_key) as addon_key,
        coalesce(churn.billing_period, renewal.billing_period) as billing_period,
        churn.opportunities as churn_opportunities,
        renewal.opportunities as renewal_opportunities,
        churn.pending as churn_pending,
        renewal.pending as renewal_pending,
        churn.churn_rate,
        renewal.renewal_rate
    from churn
    full outer join renewal
        on
            churn.vendor_id = renewal.vendor_id
            and churn.month = renewal.month
            and churn.addon_key = renewal.addon_key
            and churn.billing_period = renewal.billing_period

),

final as (

    select * from joined
    where
        churn_opportunities is distinct from renewal_opportunities
        or churn_pending is distinct from renewal_pending
        or (churn_opportunities > 0 and abs(churn_rate + renewal_rate - 1) > 1e-9)
        or (churn_opportunities = 0 and (churn_rate is not null or renewal_rate is not null))

)

select * from final
