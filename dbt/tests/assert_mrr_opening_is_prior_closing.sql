-- Per app, a month's opening MRR is the month before's closing MRR, and months run without gaps
-- to the month of as_of_date: the movements then add up to closing minus opening MRR.

with

mrr as (

    select * from {{ ref('fct_mrr') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

with_previous as (

    select
        *,
        lag(mrr) over (partition by vendor_id, addon_key order by month) as previous_mrr,
        lag(month) over (partition by vendor_id, addon_key order by month) as previous_month,
        max(month) over (partition by vendor_id, addon_key) as last_month
    from mrr

),

final as (

    select
        with_previous.vendor_id,
        with_previous.addon_key,
        with_previous.month,
        with_previous.prior_month_mrr,
        with_previous.previous_mrr,
        with_previous.previous_month,
        with_previous.last_month,
        as_of.as_of_date
    from with_previous
    inner join as_of on with_previous.vendor_id = as_of.vendor_id
    where
        with_previous.prior_month_mrr != coalesce(with_previous.previous_mrr, 0)
        or (
            with_previous.previous_month is not null
            and {{ add_months('with_previous.previous_month', 1) }} != with_previous.month
        )
        or with_previous.last_month != {{ month_start('as_of.as_of_date') }}

)

select * from final
