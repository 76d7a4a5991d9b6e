-- A license's MRR on the days the marts read it (METRICS.md "Recurring revenue", v2): the
-- snapshot day of every month from the month its first counted term starts to the month of
-- as_of_date, and the day before each end that churn events and the renewal book value. The runs
-- of int_license_segments_valued (where grace and layers are applied), expanded to their months.

with

segments as (

    select * from {{ ref('int_license_segments_valued') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

expanded as (

    -- A run's value holds on the snapshot day of each of its months; a day before an end is a
    -- run of its own month.
    select
        *,
        {{ months_from_to('first_month', 'last_month') }} as month
    from segments

),

final as (

    select
        expanded.vendor_id,
        expanded.license_key,
        expanded.addon_key,
        expanded.month,
        case
            when expanded.is_snapshot
                then {{ snapshot_day('expanded.month', 'as_of.as_of_date') }}
            else expanded.value_date
        end as value_date,
        expanded.is_snapshot,
        expanded.term_id,
        expanded.layers,
        expanded.mrr
    from expanded
    inner join as_of on expanded.vendor_id = as_of.vendor_id

)

select * from final
