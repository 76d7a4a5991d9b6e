-- Every renewal opportunity has exactly one outcome and the churn mart counts each exactly once.

with

opportunities as (

    select * from {{ ref('int_renewal_opportunities_resolved') }}

),

churn as (

    select * from {{ ref('fct_churn') }}

),

from_opportunities as (

    select
        count(*) filter (where outcome = 'renewed') as renewed,
        count(*) filter (where outcome = 'cancelled') as cancelled,
        count(*) filter (where outcome = 'pending') as pending,
        count(*) as total
    from opportunities

),

from_churn as (

    select
        coalesce(sum(opportunities - cancellations), 0) as renewed,
        coalesce(sum(cancellations), 0) as cancelled,
        coalesce(sum(pending), 0) as pending
    from churn

),

final as (

    select
        from_opportunities.*,
        from_churn.renewed as churn_renewed,
        from_churn.cancelled as churn_cancelled,
        from_churn.pending as churn_pending
    from from_opportunities
    cross join from_churn
    where
        from_opportunities.renewed + from_opportunities.cancelled + from_opportunities.pending
        != from_opportunities.total
        or from_opportunities.renewed != from_churn.renewed
        or from_opportunities.cancelled != from_churn.cancelled
        or from_opportunities.pending != from_churn.pending

)

select * from final
