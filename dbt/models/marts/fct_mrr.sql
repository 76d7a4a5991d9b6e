-- MRR, its movements and SaaS rates per app and month, summed over the license months.

with

movements as (

    select * from {{ ref('fct_mrr_movements') }}

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
        addon_key,
        sum(mrr) as mrr,
        sum(prior_month_mrr) as prior_month_mrr,
        coalesce(sum(mrr_movement_amount) filter (where mrr_movement_type = 'new'), 0) as new_mrr,
        coalesce(sum(mrr_movement_amount) filter (where mrr_movement_type = 'expansion'), 0)
            as expansion_mrr,
        coalesce(sum(mrr_movement_amount) filter (where mrr_movement_type = 'contraction'), 0)
            as contraction_mrr,
        coalesce(sum(mrr_movement_amount) filter (where mrr_movement_type = 'churn'), 0)
            as churned_mrr,
        coalesce(sum(mrr_movement_amount) filter (where mrr_movement_type = 'reactivation'), 0)
            as reactivation_mrr,
        count(*) filter (where {{ has_mrr('mrr') }}) as paying_licenses
    from movements
    group by vendor_id, month, addon_key

),

started as (

    -- Exact rule 7: from the app's first month with MRR > 0 to the month of as_of_date.
    select *
    from (
        select
            *,
            min(month) filter (where {{ has_mrr('mrr') }}) over (partition by vendor_id, addon_key)
                as first_paid_month
        from aggregated
    ) as with_first_paid_month
    where month >= first_paid_month

),

final as (

    select
        started.vendor_id,
        started.month,
        started.addon_key,
        cast(started.mrr as {{ money() }}) as mrr,
        cast(started.mrr * 12 as {{ money() }}) as arr,
        cast(started.prior_month_mrr as {{ money() }}) as prior_month_mrr,
        cast(started.new_mrr as {{ money() }}) as new_mrr,
        cast(started.expansion_mrr as {{ money() }}) as expansion_mrr,
        cast(started.contraction_mrr as {{ money() }}) as contraction_mrr,
        cast(started.churned_mrr as {{ money() }}) as churned_mrr,
        cast(started.reactivation_mrr as {{ money() }}) as reactivation_mrr,
        cast(
            started.new_mrr + started.expansion_mrr + started.contraction_mrr
            + started.churned_mrr + started.reactivation_mrr as {{ money() }}
        ) as net_new_mrr,
        started.paying_licenses,
        {{ safe_ratio('-(started.churned_mrr + started.contraction_mrr)', 'started.prior_month_mrr') }}
            as gross_mrr_churn_rate,
        {{ safe_ratio(
            '-(started.churned_mrr + started.contraction_mrr + started.expansion_mrr'
            ~ ' + started.reactivation_mrr)',
            'started.prior_month_mrr'
        ) }} as net_mrr_churn_rate,
        {{ safe_ratio(
            'started.new_mrr + started.reactivation_mrr + started.expansion_mrr',
            '-(started.churned_mrr + started.contraction_mrr)'
        ) }} as quick_ratio,
        cast(started.mrr / nullif(started.paying_licenses, 0) as {{ money() }}) as arpa,
        {{ month_end('started.month') }} <= as_of.as_of_date as is_complete
    from started
    inner join as_of on started.vendor_id = as_of.vendor_id

)

select * from final
