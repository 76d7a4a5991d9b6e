-- Transaction lines sold on or before as_of_date that can form a term, classified for the term
-- rules of METRICS.md. A line without both maintenance dates, or whose start is not before its
-- end, forms no term and nets into none (v2): it is left out here, kept in fct_transactions and
-- counted by a warn test.

with

transactions as (

    select * from {{ ref('stg_marketplace__transactions') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

classified as (

    select
        transactions.vendor_id,
        transactions.transaction_id,
        transactions.transaction_line_item_id,
        transactions.license_key,
        transactions.addon_key,
        transactions.hosting,
        transactions.billing_period,
        transactions.tier,
        transactions.partner_name,
        transactions.app_edition,
        transactions.sale_type,
        transactions.sale_date,
        transactions.maintenance_start_date,
        transactions.maintenance_end_date,
        coalesce(transactions.purchase_price, 0) as purchase_price,
        coalesce(transactions.vendor_amount, 0) as vendor_amount,
        {{ is_paid_line('transactions.sale_type', 'transactions.purchase_price') }} as is_paid,
        {{ is_refund_line('transactions.sale_type') }} as is_refund
    from transactions
    inner join as_of on transactions.vendor_id = as_of.vendor_id
    where
        transactions.sale_date <= as_of.as_of_date
        and transactions.maintenance_start_date < transactions.maintenance_end_date

),

final as (

    select * from classified

)

select * from final
