-- Terms of METRICS.md: one (license_key, maintenance start, maintenance end) of paid lines, with
-- the refunds of the same license and dates netted into its amount.
{%- set amount_basis = var('amount_basis') %}
{%- if amount_basis not in ('vendor_amount', 'purchase_price') %}
    {{ exceptions.raise_compiler_error(
        "var amount_basis must be vendor_amount or purchase_price, not " ~ amount_basis
    ) }}
{%- endif %}

with

transactions as (

    select * from {{ ref('int_transactions_counted') }}

),

paid as (

    select * from transactions
    where is_paid

),

refunds as (

    select * from transactions
    where is_refund

),

paid_ranked as (

    -- The latest paid line (exact rule 2) gives the term its app, hosting, billing period, tier
    -- and partner; the first one is the sale that opened it.
    select
        *,
        row_number() over (
            partition by vendor_id, license_key, maintenance_start_date, maintenance_end_date
            order by {{ latest_paid_first() }}
        ) as latest_rank,
        row_number() over (
            partition by vendor_id, license_key, maintenance_start_date, maintenance_end_date
            order by {{ earliest_paid_first() }}
        ) as first_rank
    from paid

),

latest_paid as (

    select * from paid_ranked
    where latest_rank = 1

),

first_paid as (

    select * from paid_ranked
    where first_rank = 1

),

netted_lines as (

    select
        vendor_id,
        license_key,
        maintenance_start_date,
        maintenance_end_date,
        purchase_price,
        vendor_amount,
        1 as is_paid_line,
        0 as is_refund_line
    from paid
    union all
    select
        refunds.vendor_id,
        refunds.license_key,
        refunds.maintenance_start_date,
        refunds.maintenance_end_date,
        refunds.purchase_price,
        refunds.vendor_amount,
        0 as is_paid_line,
        1 as is_refund_line
    from refunds
    -- a refund with no paid term of its license and dates counts nowhere (exact rule 3; a warn
    -- test lists them)
    inner join latest_paid
        on
            refunds.vendor_id = latest_paid.vendor_id
            and refunds.license_key = latest_paid.license_key
            and refunds.maintenance_start_date = latest_paid.maintenance_start_date
            and refunds.maintenance_end_date = latest_paid.maintenance_end_date

),

netted as (

    select
        vendor_id,
        license_key,
        maintenance_start_date,
        maintenance_end_date,
        -- inputs are cents: rounding after summing removes float noise only; the type is
        -- DuckDB's for a sum of decimal(18, 2), given to Postgres too (it keeps any scale)
        cast(round(sum({{ amount_basis }}), 2) as decimal(38, 2)) as amount,
        cast(round(sum(purchase_price), 2) as decimal(38, 2)) as purchase_price,
        sum(is_paid_line) as paid_lines,
        sum(is_refund_line) as refund_lines
    from netted_lines
    group by vendor_id, license_key, maintenance_start_date, maintenance_end_date

),

valued as (

    select
        netted.*,
        {{ months_between('netted.maintenance_start_date', 'netted.maintenance_end_date') }}
            as months
    from netted

),

final as (

    select
        md5(concat_ws(
            '|',
            valued.license_key,
            valued.maintenance_start_date,
            valued.maintenance_end_date
        )) as term_id,
        valued.vendor_id,
        valued.license_key,
        latest_paid.addon_key,
        latest_paid.hosting,
        latest_paid.billing_period,
        latest_paid.tier,
        latest_paid.partner_name,
        valued.maintenance_start_date as term_start_date,
        valued.maintenance_end_date as term_end_date,
        valued.amount,
        valued.purchase_price,
        valued.purchase_price <= 0 as is_refunded,
        valued.months,
        -- v2: the term's length in calendar months, whatever its billing period says (a
        -- two-year term billed Annual is 24); a negative net amount is worth nothing
        cast(greatest(valued.amount, 0) / valued.months as {{ money() }}) as monthly_value,
        valued.paid_lines,
        valued.refund_lines,
        first_paid.sale_date as first_sale_date,
        first_paid.transaction_id as first_transaction_id,
        first_paid.transaction_line_item_id as first_transaction_line_item_id,
        latest_paid.sale_date as latest_sale_date,
        latest_paid.transaction_id as latest_transaction_id,
        latest_paid.transaction_line_item_id as latest_transaction_line_item_id
    from valued
    inner join latest_paid
        on
            valued.vendor_id = latest_paid.vendor_id
            and valued.license_key = latest_paid.license_key
            and valued.maintenance_start_date = latest_paid.maintenance_start_date
            and valued.maintenance_end_date = latest_paid.maintenance_end_date
    inner join first_paid
        on
            valued.vendor_id = first_paid.vendor_id
            and valued.license_key = first_paid.license_key
            and valued.maintenance_start_date = first_paid.maintenance_start_date
            and valued.maintenance_end_date = first_paid.maintenance_end_date

)

select * from final
