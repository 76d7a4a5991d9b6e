-- Each license's MRR per month and how it moved from the month before (METRICS.md).

with

license_months as (

    select * from {{ ref('int_license_months_valued') }}

),

with_prior as (

    select
        *,
        coalesce(
            lag(mrr) over (partition by license_key order by month), 0
        ) as prior_month_mrr,
        coalesce(
            bool_or(mrr > 0) over (
                partition by license_key
                order by month
                rows between unbounded preceding and 1 preceding
            ),
            false
        ) as had_mrr_before
    from license_months

),

classified as (

    -- Changes under half a cent are float noise from amount / 12, not a movement.
    select
        *,
        case
            when mrr > 0 and prior_month_mrr > 0 and mrr - prior_month_mrr > 0.005
                then 'expansion'
            when mrr > 0 and prior_month_mrr > 0 and mrr - prior_month_mrr < -0.005
                then 'contraction'
            when mrr > 0 and prior_month_mrr > 0 then 'unchanged'
            when mrr > 0 and had_mrr_before then 'reactivation'
            when mrr > 0 then 'new'
            when prior_month_mrr > 0 then 'churn'
            else 'unchanged'
        end as mrr_movement_type
    from with_prior

),

final as (

    select
        month,
        license_key,
        addon_key,
        snapshot_date,
        term_id,
        mrr,
        mrr * 12 as arr,
        prior_month_mrr,
        mrr_movement_type,
        mrr - prior_month_mrr as mrr_movement_amount,
        had_mrr_before
    from classified

)

select * from final
