-- One row per customer per month, from the month the customer's first license starts to the
-- month of as_of_date: the sum of its licenses' MRR (all apps, all hostings) and the one
-- movement from the month before (METRICS.md "Customer movements"): a second app is expansion,
-- a Server-to-Cloud migration inside one customer is its net change, never churn plus new.
-- Summed over the licenses' runs of months (int_license_segments_valued), not over their months.

with

license_runs as (

    select * from {{ ref('int_license_segments_valued') }}
    where is_snapshot

),

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

as_of as (

    select
        vendor_id,
        {{ month_start('as_of_date') }} as as_of_month
    from {{ ref('int_as_of_date') }}

),

customer_license_runs as (

    select
        license_runs.vendor_id,
        coalesce(license_customers.customer_key, license_runs.license_key) as customer_key,
        license_runs.first_month,
        license_runs.last_month,
        license_runs.mrr,
        case when {{ has_mrr('license_runs.mrr') }} then 1 else 0 end as paying
    from license_runs
    left join license_customers
        on
            license_runs.vendor_id = license_customers.vendor_id
            and license_runs.license_key = license_customers.license_key

),

changes as (

    -- A license's run adds its MRR to its customer's from its first month and takes it away
    -- after its last (a license's runs tile its months to the month of as_of_date).
    select
        vendor_id,
        customer_key,
        first_month as month,
        mrr as mrr_change,
        paying as paying_change
    from customer_license_runs
    union all
    select
        customer_license_runs.vendor_id,
        customer_license_runs.customer_key,
        {{ add_months('customer_license_runs.last_month', 1) }} as month,
        -customer_license_runs.mrr as mrr_change,
        -customer_license_runs.paying as paying_change
    from customer_license_runs
    inner join as_of on customer_license_runs.vendor_id = as_of.vendor_id
    where customer_license_runs.last_month < as_of.as_of_month

),

summed_changes as (

    select
        vendor_id,
        customer_key,
        month,
        sum(mrr_change) as mrr_change,
        sum(paying_change) as paying_change
    from changes
    group by vendor_id, customer_key, month

),

customer_runs as (

    -- Runs of months with one sum: from each month the sum changes in to the next one.
    select
        summed_changes.vendor_id,
        summed_changes.customer_key,
        summed_changes.month as first_month,
        coalesce(
            {{ add_months(
                'lead(summed_changes.month) over ('
                ~ 'partition by summed_changes.vendor_id, summed_changes.customer_key'
                ~ ' order by summed_changes.month)',
                -1
            ) }},
            as_of.as_of_month
        ) as last_month,
        sum(summed_changes.mrr_change) over (
            partition by summed_changes.vendor_id, summed_changes.customer_key
            order by summed_changes.month
            rows between unbounded preceding and current row
        ) as mrr,
        sum(summed_changes.paying_change) over (
            partition by summed_changes.vendor_id, summed_changes.customer_key
            order by summed_changes.month
            rows between unbounded preceding and current row
        ) as paying_licenses
    from summed_changes
    inner join as_of on summed_changes.vendor_id = as_of.vendor_id

),

runs_with_prior as (

    select
        *,
        {{ run_before('vendor_id, customer_key') }}
    from customer_runs

),

runs_classified as (

    select
        *,
        {{ run_movements() }}
    from runs_with_prior

),

runs_valued as (

    select
        *,
        cast(
            case when first_month_movement = 'unchanged' then 0 else mrr - prior_run_mrr end
            as {{ money() }}
        ) as first_month_movement_mrr,
        -- inside a run the month before has the same MRR
        cast(0 as {{ money() }}) as later_month_movement_mrr
    from runs_classified

),

customer_months as (

    select
        *,
        {{ months_from_to('first_month', 'last_month') }} as month
    from runs_valued

),

with_prior as (

    select
        *,
        {{ month_before('month') }}
    from customer_months

),

final as (

    select
        vendor_id,
        customer_key,
        month,
        cast(mrr as {{ money() }}) as mrr,
        cast(prior_month_mrr as {{ money() }}) as prior_month_mrr,
        movement,
        case
            when month = first_month then first_month_movement_mrr
            else later_month_movement_mrr
        end as movement_mrr,
        had_mrr_before,
        cast(paying_licenses as bigint) as paying_licenses
    from with_prior

)

select * from final
