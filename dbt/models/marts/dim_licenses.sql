-- Every license, from its license record or, failing that, its latest transaction line, with
-- its terms, evaluations and MRR summed up.

with

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select * from {{ ref('stg_marketplace__transactions') }}

),

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

evaluations as (

    select * from {{ ref('int_evaluations_resolved') }}

),

license_months as (

    select * from {{ ref('fct_mrr_movements') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

transaction_only_licenses as (

    -- Lines can arrive before their license record (the API's reports lag each other).
    select {{ distinct_on('vendor_id, license_key') }}
        vendor_id,
        license_key,
        addon_license_id,
        app_entitlement_id,
        app_entitlement_number,
        license_id,
        addon_key,
        addon_name,
        hosting,
        license_type,
        tier,
        company,
        country,
        region,
        partner_name,
        partner_type
    from transactions
    where
        not exists (
            select 1 from licenses
            where
                licenses.vendor_id = transactions.vendor_id
                and licenses.license_key = transactions.license_key
        )
    {% call distinct_on_order('vendor_id, license_key') %}
        sale_date desc nulls last,
        transaction_line_item_id desc nulls last,
        transaction_id desc nulls last
    {% endcall %}

),

all_licenses as (

    select
        vendor_id,
        license_key,
        addon_license_id,
        app_entitlement_id,
        app_entitlement_number,
        license_id,
        addon_key,
        addon_name,
        hosting,
        license_type,
        license_status,
        tier,
        app_edition,
        company,
        country,
        region,
        partner_name,
        partner_type,
        attribution_channel,
        maintenance_start_date,
        maintenance_end_date,
        evaluation_start_date,
        evaluation_end_date,
        last_updated_date,
        true as has_license_record
    from licenses
    union all
    select
        vendor_id,
        license_key,
        addon_license_id,
        app_entitlement_id,
        app_entitlement_number,
        license_id,
        addon_key,
        addon_name,
        hosting,
        license_type,
        null as license_status,
        tier,
        null as app_edition,
        company,
        country,
        region,
        partner_name,
        partner_type,
        null as attribution_channel,
        null as maintenance_start_date,
        null as maintenance_end_date,
        null as evaluation_start_date,
        null as evaluation_end_date,
        null as last_updated_date,
        false as has_license_record
    from transaction_only_licenses

),

term_summary as (

    select
        vendor_id,
        license_key,
        count(*) as counted_terms,
        min(term_start_date) as first_term_start_date,
        max(term_end_date) as last_term_end_date,
        sum(amount) as lifetime_amount
    from terms
    group by vendor_id, license_key

),

evaluation_summary as (

    select
        vendor_id,
        license_key,
        count(*) as evaluations,
        count(*) filter (where is_converted) as converted_evaluations
    from evaluations
    group by vendor_id, license_key

),

current_month as (

    select
        license_months.vendor_id,
        license_months.license_key,
        license_months.mrr as current_mrr
    from license_months
    inner join as_of on license_months.vendor_id = as_of.vendor_id
    where license_months.month = {{ month_start('as_of.as_of_date') }}

),

final as (

    select
        all_licenses.*,
        license_customers.customer_key,
        coalesce(term_summary.counted_terms, 0) as counted_terms,
        term_summary.first_term_start_date,
        term_summary.last_term_end_date,
        coalesce(term_summary.lifetime_amount, 0) as lifetime_amount,
        coalesce(evaluation_summary.evaluations, 0) as evaluations,
        coalesce(evaluation_summary.converted_evaluations, 0) as converted_evaluations,
        coalesce(current_month.current_mrr, 0) as current_mrr,
        coalesce(current_month.current_mrr, 0) > 0 as is_paying
    from all_licenses
    left join term_summary
        on
            all_licenses.vendor_id = term_summary.vendor_id
            and all_licenses.license_key = term_summary.license_key
    left join evaluation_summary
        on
            all_licenses.vendor_id = evaluation_summary.vendor_id
            and all_licenses.license_key = evaluation_summary.license_key
    left join current_month
        on
            all_licenses.vendor_id = current_month.vendor_id
            and all_licenses.license_key = current_month.license_key
    left join license_customers
        on
            all_licenses.vendor_id = license_customers.vendor_id
            and all_licenses.license_key = license_customers.license_key

)

select * from final
