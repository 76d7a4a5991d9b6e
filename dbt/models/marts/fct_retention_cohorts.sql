-- Customer retention per cohort month x months since (METRICS.md "Retention cohorts"): cohort
-- size, active customers, starting, current and retained MRR, NRR, GRR and logo retention, the
-- by-hosting cohorts added up.

with

by_hosting as (

    select * from {{ ref('fct_retention_cohorts_by_hosting') }}

),

summed as (

    select
        vendor_id,
        cohort_month,
        months_since,
        cast(sum(customers) as bigint) as customers,
        cast(sum(active_customers) as bigint) as active_customers,
        sum(starting_mrr) as starting_mrr,
        sum(mrr) as mrr,
        sum(retained_mrr) as retained_mrr
    from by_hosting
    group by vendor_id, cohort_month, months_since

),

final as (

    select
        summed.vendor_id,
        summed.cohort_month,
        summed.months_since,
        summed.customers,
        summed.active_customers,
        cast(summed.starting_mrr as {{ money() }}) as starting_mrr,
        cast(summed.mrr as {{ money() }}) as mrr,
        cast(summed.retained_mrr as {{ money() }}) as retained_mrr,
        {{ retention_rates('summed') }}
    from summed

)

select * from final
