-- Each license's MRR per month and how it moved from the month before (METRICS.md): the runs of
-- months with one value (int_license_segments_valued) classified once, expanded to months.

with

license_runs as (

    select * from {{ ref('int_license_segments_valued') }}
    where is_snapshot

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

runs_with_prior as (

    select
        *,
        {{ run_before('vendor_id, license_key') }}
    from license_runs

),

runs_classified as (

    select
        *,
        {{ run_movements() }},
        cast(mrr * 12 as {{ money() }}) as arr,
        cast(mrr - prior_run_mrr as {{ money() }}) as first_month_movement_amount,
        cast(0 as {{ money() }}) as later_month_movement_amount
    from runs_with_prior

),

license_months as (

    select
        *,
        {{ months_from_to('first_month', 'last_month') }} as month
    from runs_classified

),

with_prior as (

    select
        *,
        {{ month_before('month') }}
    from license_months

),

final as (

    select
        with_prior.vendor_id,
        with_prior.month,
        with_prior.license_key,
        with_prior.addon_key,
        {{ snapshot_day('with_prior.month', 'as_of.as_of_date') }} as snapshot_date,
        with_prior.term_id,
        with_prior.layers,
        with_prior.mrr,
        with_prior.arr,
        cast(with_prior.prior_month_mrr as {{ money() }}) as prior_month_mrr,
        with_prior.movement as mrr_movement_type,
        case
            when with_prior.month = with_prior.first_month
                then with_prior.first_month_movement_amount
            else with_prior.later_month_movement_amount
        end as mrr_movement_amount,
        with_prior.had_mrr_before
    from with_prior
    inner join as_of on with_prior.vendor_id = as_of.vendor_id

)

select * from final
