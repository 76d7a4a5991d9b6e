-- Evaluations of METRICS.md (Cloud licenses), each with the paid New sale that converted it,
-- its conversion type and whether its window is still open.

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

    select as_of_date from {{ ref('int_as_of_date') }}

),

evaluation_forms as (

    -- An evaluation license still open, and a converted license that remembers its evaluation:
    -- on conversion the Marketplace rewrites the first into the second.
    select
        license_key,
        addon_key,
        maintenance_start_date as evaluation_start_date,
        maintenance_end_date as evaluation_end_date
    from licenses
    where license_type = 'EVALUATION' and maintenance_start_date is not null
    union all
    select
        license_key,
        addon_key,
        evaluation_start_date,
        evaluation_end_date
    from licenses
    where evaluation_start_date is not null

),

evaluations as (

    select
        evaluation_forms.license_key,
        evaluation_forms.evaluation_start_date,
        any_value(evaluation_forms.addon_key) as addon_key,
        coalesce(
            max(evaluation_forms.evaluation_end_date), evaluation_forms.evaluation_start_date
        ) as evaluation_end_date
    from evaluation_forms
    cross join as_of
    where evaluation_forms.evaluation_start_date <= as_of.as_of_date
    group by evaluation_forms.license_key, evaluation_forms.evaluation_start_date

),

new_sales as (

    -- Paid New lines of counted terms: a purchase refunded in full converts nothing.
    select
        transactions.license_key,
        transactions.sale_date,
        transactions.transaction_id,
        transactions.transaction_line_item_id
    from transactions
    inner join terms
        on
            transactions.license_key = terms.license_key
            and transactions.maintenance_start_date = terms.term_start_date
            and transactions.maintenance_end_date = terms.term_end_date
    where transactions.is_paid and transactions.sale_type = 'New'

),

conversions as (

    select
        evaluations.license_key,
        evaluations.evaluation_start_date,
        new_sales.sale_date as conversion_sale_date,
        new_sales.transaction_id as conversion_transaction_id
    from evaluations
    inner join new_sales
        on
            evaluations.license_key = new_sales.license_key
            and evaluations.evaluation_start_date <= new_sales.sale_date
            and evaluations.evaluation_end_date + {{ var('conversion_window_days') }}
            >= new_sales.sale_date
    qualify row_number() over (
        partition by evaluations.license_key, evaluations.evaluation_start_date
        order by
            new_sales.sale_date asc,
            new_sales.transaction_line_item_id asc,
            new_sales.transaction_id asc
    ) = 1

),

first_terms as (

    select
        license_key,
        min(term_start_date) as first_term_start_date
    from terms
    group by license_key

),

final as (

    select
        md5(concat_ws('|', evaluations.license_key, evaluations.evaluation_start_date))
            as evaluation_id,
        evaluations.license_key,
        evaluations.addon_key,
        cast(date_trunc('month', evaluations.evaluation_start_date) as date) as month,
        evaluations.evaluation_start_date,
        evaluations.evaluation_end_date,
        case
            when first_terms.first_term_start_date < evaluations.evaluation_start_date
                then 'Upgrade'
            else 'Net New'
        end as conversion_type,
        conversions.conversion_sale_date is not null as is_converted,
        conversions.conversion_sale_date,
        conversions.conversion_transaction_id,
        conversions.conversion_sale_date - evaluations.evaluation_start_date as days_to_convert,
        evaluations.evaluation_end_date + {{ var('conversion_window_days') }}
        > as_of.as_of_date as is_open
    from evaluations
    cross join as_of
    left join conversions
        on
            evaluations.license_key = conversions.license_key
            and evaluations.evaluation_start_date = conversions.evaluation_start_date
    left join first_terms
        on evaluations.license_key = first_terms.license_key

)

select * from final
