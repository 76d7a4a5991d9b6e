-- Evaluations of METRICS.md (Cloud licenses), each with the paid sale that converted it, its
-- conversion type (Atlassian's: Upgrade for an edition upgrade trial, else Net New) and whether
-- its window is still open.

with

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}
    where hosting = 'Cloud'

),

transactions as (

    select * from {{ ref('int_transactions_counted') }}

),

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

evaluation_forms as (

    -- An evaluation license still open, a converted license that remembers its evaluation (on
    -- conversion the Marketplace rewrites the first into the second), and an edition upgrade
    -- trial of a paying license (v2). A missing end counts as the start.
    select
        vendor_id,
        license_key,
        addon_key,
        maintenance_start_date as evaluation_start_date,
        coalesce(maintenance_end_date, maintenance_start_date) as evaluation_end_date,
        false as is_upgrade_trial,
        null as evaluating_edition
    from licenses
    where license_type = 'EVALUATION' and maintenance_start_date is not null
    union all
    select
        vendor_id,
        license_key,
        addon_key,
        evaluation_start_date,
        coalesce(evaluation_end_date, evaluation_start_date) as evaluation_end_date,
        false as is_upgrade_trial,
        null as evaluating_edition
    from licenses
    where evaluation_start_date is not null
    union all
    select
        vendor_id,
        license_key,
        addon_key,
        upgrade_evaluation_start_date as evaluation_start_date,
        cast(upgrade_evaluation_start_date + {{ var('upgrade_trial_days') }} as date)
            as evaluation_end_date,
        true as is_upgrade_trial,
        upgrade_evaluating_edition as evaluating_edition
    from licenses
    where upgrade_evaluation_start_date is not null

),

evaluations as (

    -- Exact rule 4: one evaluation per (license, start) with the latest end; it is an Upgrade
    -- only when the upgrade trial alone has that end (a tie is Net New).
    select
        evaluation_forms.vendor_id,
        evaluation_forms.license_key,
        evaluation_forms.evaluation_start_date,
        min(evaluation_forms.addon_key) as addon_key,
        max(evaluation_forms.evaluation_end_date) as evaluation_end_date,
        bool_and(evaluation_forms.is_upgrade_trial) filter (
            where evaluation_forms.evaluation_end_date = evaluation_forms.latest_end_date
        ) as is_upgrade_trial,
        min(evaluation_forms.evaluating_edition) filter (
            where evaluation_forms.is_upgrade_trial
        ) as evaluating_edition
    from (
        select
            *,
            max(evaluation_end_date) over (
                partition by vendor_id, license_key, evaluation_start_date
            ) as latest_end_date
        from evaluation_forms
    ) as evaluation_forms
    inner join as_of on evaluation_forms.vendor_id = as_of.vendor_id
    where evaluation_forms.evaluation_start_date <= as_of.as_of_date
    group by
        evaluation_forms.vendor_id,
        evaluation_forms.license_key,
        evaluation_forms.evaluation_start_date

),

converting_sales as (

    -- Paid New and Upgrade lines of counted terms: a purchase refunded in full converts nothing.
    select
        transactions.vendor_id,
        transactions.license_key,
        transactions.sale_type,
        transactions.app_edition,
        transactions.sale_date,
        transactions.transaction_id,
        transactions.transaction_line_item_id
    from transactions
    inner join terms
        on
            transactions.vendor_id = terms.vendor_id
            and transactions.license_key = terms.license_key
            and transactions.maintenance_start_date = terms.term_start_date
            and transactions.maintenance_end_date = terms.term_end_date
    where transactions.is_paid and transactions.sale_type in ('New', 'Upgrade')

),

conversions as (

    -- Net New converts with a paid New sale; an edition upgrade trial with a paid Upgrade to the
    -- edition tried. Either within [start, end + conversion_window_days]; the first one counts.
    select {{ distinct_on('evaluations.vendor_id, evaluations.license_key, evaluations.evaluation_start_date') }}
        evaluations.vendor_id,
        evaluations.license_key,
        evaluations.evaluation_start_date,
        converting_sales.sale_date as conversion_sale_date,
        converting_sales.transaction_id as conversion_transaction_id
    from evaluations
    inner join converting_sales
        on
            evaluations.vendor_id = converting_sales.vendor_id
            and evaluations.license_key = converting_sales.license_key
            and evaluations.evaluation_start_date <= converting_sales.sale_date
            and evaluations.evaluation_end_date + {{ var('conversion_window_days') }}
            >= converting_sales.sale_date
    where
        case
            when evaluations.is_upgrade_trial
                then
                    converting_sales.sale_type = 'Upgrade'
                    and converting_sales.app_edition = evaluations.evaluating_edition
            else converting_sales.sale_type = 'New'
        end
    {{ distinct_on_order(
        'evaluations.vendor_id, evaluations.license_key, evaluations.evaluation_start_date',
        earliest_paid_first('converting_sales.'),
    ) }}

),

first_terms as (

    select
        vendor_id,
        license_key,
        min(term_start_date) as first_term_start_date
    from terms
    group by vendor_id, license_key

),

final as (

    select
        md5(concat_ws('|', evaluations.license_key, evaluations.evaluation_start_date))
            as evaluation_id,
        evaluations.vendor_id,
        evaluations.license_key,
        evaluations.addon_key,
        {{ month_start('evaluations.evaluation_start_date') }} as month,
        evaluations.evaluation_start_date,
        evaluations.evaluation_end_date,
        case when evaluations.is_upgrade_trial then 'Upgrade' else 'Net New' end
            as conversion_type,
        case when evaluations.is_upgrade_trial then evaluations.evaluating_edition end
            as evaluating_edition,
        -- a Net New evaluation of a license that already had a counted term (v1's "Upgrade")
        not evaluations.is_upgrade_trial
        and coalesce(first_terms.first_term_start_date < evaluations.evaluation_start_date, false)
            as is_returning_customer,
        conversions.conversion_sale_date is not null as is_converted,
        conversions.conversion_sale_date,
        conversions.conversion_transaction_id,
        conversions.conversion_sale_date - evaluations.evaluation_start_date as days_to_convert,
        evaluations.evaluation_end_date + {{ var('conversion_window_days') }}
        > as_of.as_of_date as is_open
    from evaluations
    inner join as_of on evaluations.vendor_id = as_of.vendor_id
    left join conversions
        on
            evaluations.vendor_id = conversions.vendor_id
            and evaluations.license_key = conversions.license_key
            and evaluations.evaluation_start_date = conversions.evaluation_start_date
    left join first_terms
        on
            evaluations.vendor_id = first_terms.vendor_id
            and evaluations.license_key = first_terms.license_key

)

select * from final
