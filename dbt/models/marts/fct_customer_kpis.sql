-- Vendor-wide SaaS figures per month on the customer grain: paying customers, MRR and its
-- movements, logo churn and ARPA, from the first month with MRR > 0 to the month of as_of_date.

with

customer_months as (

    select * from {{ ref('int_customer_months_valued') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

aggregated as (

    select
        vendor_id,
        month,
        count(*) filter (where {{ has_mrr('mrr') }}) as paying_customers,
        count(*) filter (where {{ has_mrr('prior_month_mrr') }}) as opening_paying_customers,
        count(*) filter (where movement = 'churn') as churned_customers,
        sum(mrr) as mrr,
        coalesce(sum(movement_mrr) filter (where movement = 'new'), 0) as new_mrr,
        coalesce(sum(movement_mrr) filter (where movement = 'expansion'), 0) as expansion_mrr,
        coalesce(sum(movement_mrr) filter (where movement = 'contraction'), 0) as contraction_mrr,
        coalesce(sum(movement_mrr) filter (where movement = 'churn'), 0) as churned_mrr,
        coalesce(sum(movement_mrr) filter (where movement = 'reactivation'), 0) as reactivation_mrr
    from customer_months
    group by vendor_id, month

),

started as (

    select *
    from (
        select
            *,
            min(month) filter (where paying_customers > 0) over (partition by vendor_id)
                as first_paid_month
        from aggregated
    ) as with_first_paid_month
    where month >= first_paid_month

),

final as (

    select
        started.vendor_id,
        started.month,
        started.paying_customers,
        cast(started.mrr as {{ money() }}) as mrr,
        cast(started.new_mrr as {{ money() }}) as new_mrr,
        cast(started.expansion_mrr as {{ money() }}) as expansion_mrr,
        cast(started.contraction_mrr as {{ money() }}) as contraction_mrr,
        cast(started.churned_mrr as {{ money() }}) as churned_mrr,
        cast(started.reactivation_mrr as {{ money() }}) as reactivation_mrr,
        {{ safe_ratio('started.churned_customers', 'started.opening_paying_customers') }}
            as logo_churn_rate,
        cast(started.mrr / nullif(started.paying_customers, 0) as {{ money() }}) as arpa,
        {{ month_end('started.month') }} <= as_of.as_of_date as is_complete,
        started.opening_paying_customers,
        started.churned_customers
    from started
    inner join as_of on started.vendor_id = as_of.vendor_id

)

select * from final
