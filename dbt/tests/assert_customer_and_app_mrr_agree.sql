-- The customer grain and the app grain split the same license MRR: per month, the apps' MRR in
-- fct_mrr and the customers' MRR in fct_customer_kpis are equal (exact: DECIMAL amounts).

with

app_mrr as (

    select * from {{ ref('fct_mrr') }}

),

kpis as (

    select * from {{ ref('fct_customer_kpis') }}

),

by_month as (

    select
        vendor_id,
        month,
        sum(mrr) as mrr
    from app_mrr
    group by vendor_id, month

),

final as (

    select
        coalesce(kpis.vendor_id, by_month.vendor_id) as vendor_id,
        coalesce(kpis.month, by_month.month) as month,
        kpis.mrr as customer_mrr,
        by_month.mrr as app_mrr
    from kpis
    full outer join by_month
        on kpis.vendor_id = by_month.vendor_id and kpis.month = by_month.month
    where coalesce(kpis.mrr, 0) != coalesce(by_month.mrr, 0)

)

select * from final
