-- Each license's MRR per month and how it moved from the month before (METRICS.md).

with

license_months as (

    select * from {{ ref('int_license_days_valued') }}
    where is_snapshot

),

with_prior as (

    select
        *,
        {{ month_before('vendor_id, license_key') }}
    from license_months

),

final as (

    select
        vendor_id,
        month,
        license_key,
        addon_key,
        value_date as snapshot_date,
        term_id,
        layers,
        mrr,
        cast(mrr * 12 as {{ money() }}) as arr,
        cast(prior_month_mrr as {{ money() }}) as prior_month_mrr,
        {{ mrr_movement('mrr', 'prior_month_mrr', 'had_mrr_before') }} as mrr_movement_type,
        cast(mrr - prior_month_mrr as {{ money() }}) as mrr_movement_amount,
        had_mrr_before
    from with_prior

)

select * from final
