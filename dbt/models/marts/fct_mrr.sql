-- MRR and its movements per app and month, summed over the license months.

with

movements as (

    select * from {{ ref('fct_mrr_movements') }}

),

aggregated as (

    select
        month,
        addon_key,
        -- fsum: an exact sum whatever order the licenses come in
        fsum(mrr) as mrr,
        fsum(prior_month_mrr) as prior_month_mrr,
        coalesce(fsum(mrr_movement_amount) filter (mrr_movement_type = 'new'), 0) as new_mrr,
        coalesce(fsum(mrr_movement_amount) filter (mrr_movement_type = 'expansion'), 0)
            as expansion_mrr,
        coalesce(fsum(mrr_movement_amount) filter (mrr_movement_type = 'contraction'), 0)
            as contraction_mrr,
        coalesce(fsum(mrr_movement_amount) filter (mrr_movement_type = 'churn'), 0)
            as churned_mrr,
        coalesce(fsum(mrr_movement_amount) filter (mrr_movement_type = 'reactivation'), 0)
            as reactivation_mrr,
        count(*) filter (mrr > 0) as paying_licenses
    from movements
    group by month, addon_key

),

final as (

    select
        month,
        addon_key,
        mrr,
        mrr * 12 as arr,
        prior_month_mrr,
        new_mrr,
        expansion_mrr,
        contraction_mrr,
        churned_mrr,
        reactivation_mrr,
        new_mrr + expansion_mrr + contraction_mrr + churned_mrr + reactivation_mrr
            as net_new_mrr,
        paying_licenses
    from aggregated

)

select * from final
