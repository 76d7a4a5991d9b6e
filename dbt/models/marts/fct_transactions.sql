-- Transaction lines with their discounts split out by type, linked to their term and, for a
-- refund, to the paid line it refunds.

with

transactions as (

    select * from {{ ref('stg_marketplace__transactions') }}

),

discounts as (

    select * from {{ ref('stg_marketplace__transaction_discounts') }}

),

terms as (

    select * from {{ ref('int_terms_netted') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

discounts_by_line as (

    select
        vendor_id,
        transaction_row_id,
        count(*) as discounts,
        sum(discount_amount) filter (where discount_type = 'LOYALTY_DISCOUNT')
            as loyalty_discount_amount,
        sum(discount_amount) filter (where discount_type = 'EXPERT') as expert_discount_amount,
        sum(discount_amount) filter (where discount_type = 'MANUAL') as manual_discount_amount,
        sum(discount_amount) filter (where discount_type = 'MARKETPLACE_PROMOTION')
            as marketplace_promotion_discount_amount,
        string_agg(distinct discount_code, ', ' order by discount_code) as promotion_codes
    from discounts
    group by vendor_id, transaction_row_id

),

classified as (

    select
        *,
        {{ is_paid_line('sale_type', 'purchase_price') }} as is_paid,
        {{ is_refund_line('sale_type') }} as is_refund
    from transactions

),

refund_links as (

    -- The paid line a refund takes back: same license and maintenance dates, preferring the
    -- transaction the refund names, then the latest sale before it.
    select {{ distinct_on('refunds.vendor_id, refunds.transaction_id, refunds.transaction_line_item_id') }}
        refunds.vendor_id,
        refunds.transaction_id,
        refunds.transaction_line_item_id,
        originals.transaction_id as refunded_transaction_id,
        originals.transaction_line_item_id as refunded_transaction_line_item_id
    from classified as refunds
    inner join classified as originals
        on
            refunds.vendor_id = originals.vendor_id
            and refunds.license_key = originals.license_key
            and refunds.maintenance_start_date = originals.maintenance_start_date
            and refunds.maintenance_end_date = originals.maintenance_end_date
            and originals.is_paid
    where refunds.is_refund
    -- nulls last, as DuckDB sorts them: Postgres puts nulls first in a descending order
    {% call distinct_on_order('refunds.vendor_id, refunds.transaction_id, refunds.transaction_line_item_id') %}
        originals.transaction_id = refunds.original_transaction_id desc nulls last,
        originals.sale_date <= refunds.sale_date desc nulls last,
        originals.sale_date desc nulls last,
        originals.transaction_line_item_id desc nulls last
    {% endcall %}

),

final as (

    select
        classified.transaction_id || ':' || classified.transaction_line_item_id
            as transaction_line_id,
        classified.vendor_id,
        classified.transaction_id,
        classified.transaction_line_item_id,
        classified.license_key,
        classified.addon_key,
        terms.term_id,
        classified.sale_date,
        classified.sale_type,
        classified.hosting,
        classified.billing_period,
        classified.license_type,
        classified.tier,
        classified.app_edition,
        classified.payment_status,
        classified.payment_terms,
        classified.is_invoice_manual,
        classified.is_paid,
        classified.is_refund,
        classified.sale_date <= as_of.as_of_date as is_counted,
        classified.maintenance_start_date,
        classified.maintenance_end_date,
        classified.purchase_price,
        classified.vendor_amount,
        classified.partner_discount_amount,
        coalesce(discounts_by_line.discounts, 0) as discounts,
        coalesce(discounts_by_line.loyalty_discount_amount, 0) as loyalty_discount_amount,
        coalesce(discounts_by_line.expert_discount_amount, 0) as expert_discount_amount,
        coalesce(discounts_by_line.manual_discount_amount, 0) as manual_discount_amount,
        coalesce(discounts_by_line.marketplace_promotion_discount_amount, 0)
            as marketplace_promotion_discount_amount,
        discounts_by_line.promotion_codes,
        classified.refund_reason,
        classified.credit_note_reason,
        classified.original_transaction_id,
        classified.original_sale_date,
        refund_links.refunded_transaction_id,
        refund_links.refunded_transaction_line_item_id,
        classified.change_in_tier,
        classified.old_tier,
        classified.is_billing_period_changed,
        classified.old_billing_period,
        classified.company,
        classified.country,
        classified.region,
        classified.partner_name,
        classified.partner_type,
        classified.last_updated_date
    from classified
    inner join as_of on classified.vendor_id = as_of.vendor_id
    left join discounts_by_line
        on
            classified.vendor_id = discounts_by_line.vendor_id
            and classified.transaction_row_id = discounts_by_line.transaction_row_id
    left join refund_links
        on
            classified.vendor_id = refund_links.vendor_id
            and classified.transaction_id = refund_links.transaction_id
            and classified.transaction_line_item_id = refund_links.transaction_line_item_id
    left join terms
        on
            classified.vendor_id = terms.vendor_id
            and classified.license_key = terms.license_key
            and classified.maintenance_start_date = terms.term_start_date
            and classified.maintenance_end_date = terms.term_end_date

)

select * from final
