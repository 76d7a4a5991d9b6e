-- METRICS.md v2: a paid or refund line whose maintenance dates are missing, or whose start is
-- not before its end, forms no term. Such lines are data to look at, not a failure: warn.
{{ config(severity='warn') }}

with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

final as (

    select
        vendor_id,
        transaction_id,
        transaction_line_item_id,
        license_key,
        sale_type,
        sale_date,
        maintenance_start_date,
        maintenance_end_date
    from transactions
    where
        is_counted
        and (is_paid or is_refund)
        and not coalesce(maintenance_start_date < maintenance_end_date, false)

)

select * from final
