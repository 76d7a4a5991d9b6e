-- Each customer's MRR per month and how it moved from the month before (METRICS.md "Customer
-- movements"): a row for every month with MRR > 0 or a movement (exact rule 7).

with

customer_months as (

    select * from {{ ref('int_customer_months_valued') }}

),

final as (

    select
        vendor_id,
        month,
        customer_key,
        mrr,
        movement,
        movement_mrr,
        prior_month_mrr,
        paying_licenses
    from customer_months
    where {{ has_mrr('mrr') }} or movement != 'unchanged'

)

select * from final
