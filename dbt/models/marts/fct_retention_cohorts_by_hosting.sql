-- Customer retention per first hosting x cohort month x months since (METRICS.md "Retention
-- cohorts"): a customer's cohort is the month of its first snapshot with MRR > 0, followed to the
-- month of as_of_date; its first hosting that of its earliest-starting license (exact rule 8).
-- fct_retention_cohorts adds these rows up over the hostings.

with

customer_months as (

    select * from {{ ref('int_customer_months_valued') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

cohort_months as (

    select
        customer_months.vendor_id,
        customer_months.customer_key,
        customers.first_hosting,
        customers.first_paid_month as cohort_month,
        customer_months.month,
        customer_months.mrr,
        -- the customer's MRR at its cohort month
        first_value(customer_months.mrr) over (
            partition by customer_months.vendor_id, customer_months.customer_key
            order by customer_months.month
        ) as starting_mrr
    from customer_months
    inner join customers
        on
            customer_months.vendor_id = customers.vendor_id
            and customer_months.customer_key = customers.customer_key
    where customer_months.month >= customers.first_paid_month

),

counted as (

    select
        vendor_id,
        first_hosting,
        cohort_month,
        {{ month_boundaries('cohort_month', 'month') }} as months_since,
        count(*) as customers,
        count(*) filter (where {{ has_mrr('mrr') }}) as active_customers,
        cast(sum(starting_mrr) as {{ money() }}) as starting_mrr,
        cast(sum(mrr) as {{ money() }}) as mrr,
        cast(sum(least(mrr, starting_mrr)) as {{ money() }}) as retained_mrr
    from cohort_months
    group by vendor_id, first_hosting, cohort_month, months_since

),

final as (

    select
        counted.*,
        {{ retention_rates('counted') }}
    from counted

)

select * from final
