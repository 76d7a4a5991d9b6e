-- METRICS.md v2: per month, the customers' movements add up exactly to closing minus opening MRR
-- (no tolerance, DECIMAL amounts), and fct_customer_kpis carries the same sums.

with

customer_mrr as (

    select * from {{ ref('fct_customer_mrr') }}

),

kpis as (

    select * from {{ ref('fct_customer_kpis') }}

),

monthly as (

    select
        vendor_id,
        month,
        sum(mrr) as mrr,
        sum(movement_mrr) as movement_mrr
    from customer_mrr
    group by vendor_id, month

),

with_opening as (

    select
        kpis.vendor_id,
        kpis.month,
        kpis.mrr as kpi_mrr,
        kpis.new_mrr + kpis.expansion_mrr + kpis.contraction_mrr + kpis.churned_mrr
        + kpis.reactivation_mrr as kpi_movement_mrr,
        coalesce(monthly.mrr, 0) as mrr,
        coalesce(monthly.movement_mrr, 0) as movement_mrr,
        coalesce(lag(kpis.mrr) over (partition by kpis.vendor_id order by kpis.month), 0) as opening_mrr
    from kpis
    left join monthly on kpis.vendor_id = monthly.vendor_id and kpis.month = monthly.month

),

final as (

    select * from with_opening
    where
        movement_mrr != mrr - opening_mrr
        or kpi_movement_mrr != movement_mrr
        or kpi_mrr != mrr

)

select * from final
