-- One row per customer per month, from the month the customer's first license starts to the
-- month of as_of_date: the sum of its licenses' MRR (all apps, all hostings) and the one
-- movement from the month before (METRICS.md "Customer movements"): a second app is expansion,
-- a Server-to-Cloud migration inside one customer is its net change, never churn plus new.

with

license_months as (

    select * from {{ ref('int_license_days_valued') }}
    where is_snapshot

),

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

summed as (

    select
        license_months.vendor_id,
        coalesce(license_customers.customer_key, license_months.license_key) as customer_key,
        license_months.month,
        sum(license_months.mrr) as mrr,
        count(*) filter (where {{ has_mrr('license_months.mrr') }}) as paying_licenses
    from license_months
    left join license_customers
        on
            license_months.vendor_id = license_customers.vendor_id
            and license_months.license_key = license_customers.license_key
    group by
        license_months.vendor_id,
        coalesce(license_customers.customer_key, license_months.license_key),
        license_months.month

),

with_prior as (

    select
        *,
        {{ month_before('vendor_id, customer_key') }}
    from summed

),

classified as (

    select
        *,
        {{ mrr_movement('mrr', 'prior_month_mrr', 'had_mrr_before') }} as movement
    from with_prior

),

final as (

    select
        vendor_id,
        customer_key,
        month,
        cast(mrr as {{ money() }}) as mrr,
        cast(prior_month_mrr as {{ money() }}) as prior_month_mrr,
        movement,
        cast(
            case when movement = 'unchanged' then 0 else mrr - prior_month_mrr end
            as {{ money() }}
        ) as movement_mrr,
        had_mrr_before,
        paying_licenses
    from classified

)

select * from final
