-- METRICS.md exact rule 3: a refund whose license and maintenance dates match no paid term is
-- ignored. Such refunds are worth a look, not a failure: warn.
{{ config(severity='warn') }}

with

transactions as (

    select * from {{ ref('int_transactions_counted') }}

),

terms as (

    select * from {{ ref('int_terms_netted') }}

),

final as (

    select
        transactions.vendor_id,
        transactions.transaction_id,
        transactions.transaction_line_item_id,
        transactions.license_key,
        transactions.maintenance_start_date,
        transactions.maintenance_end_date
    from transactions
    left join terms
        on
            transactions.vendor_id = terms.vendor_id
            and transactions.license_key = terms.license_key
            and transactions.maintenance_start_date = terms.term_start_date
            and transactions.maintenance_end_date = terms.term_end_date
    where transactions.is_refund and terms.term_id is null

)

select * from final
