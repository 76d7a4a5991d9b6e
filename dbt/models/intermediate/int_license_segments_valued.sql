-- A license's MRR on the days the marts read it (METRICS.md "Recurring revenue", v2), in interval
-- form: the snapshot days of the months from the month its first counted term starts to the month
-- of as_of_date, cut into runs of months with the same covering terms (one row each, valued on
-- its first month's snapshot day), and the day before each end that churn events and the renewal
-- book value (one row each). The one place that applies grace in MRR and layers.
--
-- The covering terms change only at a few months of a license (where a term's first or last
-- covered snapshot day falls), so each run is valued once; valuing every snapshot day on its own
-- joined ~20M license-months with the terms' months on the large vendor (DECISIONLOG, "dbt build
-- on the large vendor, part 2"). int_license_days_valued expands the runs to months.

-- DuckDB keeps every CTE read more than once in memory for the whole query: the table reads and
-- the join that are cheap to repeat are `not materialized` (read twice each), which leaves room
-- under the 1 GB cap on the large vendor.

with

terms as not materialized (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

term_ends as not materialized (

    select * from {{ ref('int_term_ends_resolved') }}

),

as_of as not materialized (

    select
        vendor_id,
        as_of_date,
        {{ month_start('as_of_date') }} as as_of_month,
        -- the month after as_of_date's: an end past every snapshot day
        {{ add_months(month_start('as_of_date'), 1) }} as after_as_of_month
    from {{ ref('int_as_of_date') }}

),

licenses as (

    -- Exact rule 6: a license reports under the app of its counted term with the latest
    -- (start, end), for its whole history.
    select {{ distinct_on('vendor_id, license_key') }}
        vendor_id,
        license_key,
        addon_key,
        min(term_start_date) over (partition by vendor_id, license_key)
            as first_term_start_date
    from terms
    {% call distinct_on_order('vendor_id, license_key') %}
        term_start_date desc,
        term_end_date desc
    {% endcall %}

),

graced_terms as not materialized (

    -- Grace in MRR (exact rule 5): a term ending at a renewed or still pending opportunity e
    -- also covers [e, e + grace_days), so a late renewal is neither churn nor reactivation.
    select
        terms.vendor_id,
        terms.license_key,
        terms.term_id,
        terms.term_start_date,
        terms.term_end_date,
        terms.monthly_value,
        case
            when term_ends.outcome in ('renewed', 'pending')
                then terms.term_end_date + {{ var('grace_days') }}
            else terms.term_end_date
        end as covered_until_date
    from terms
    left join term_ends
        on
            terms.vendor_id = term_ends.vendor_id
            and terms.license_key = term_ends.license_key
            and terms.term_end_date = term_ends.end_date

),

term_months as (

    -- The snapshot day of month m is least(last day of m, as_of_date): the first month whose
    -- snapshot day is on or after a day x is x's month (x <= as_of_date), or none. So a term
    -- covers the snapshot days of the months [covered_from_month, covered_to_month).
    select
        graced_terms.*,
        case
            when graced_terms.term_start_date <= as_of.as_of_date
                then {{ month_start('graced_terms.term_start_date') }}
            else as_of.after_as_of_month
        end as covered_from_month,
        case
            when graced_terms.covered_until_date <= as_of.as_of_date
                then {{ month_start('graced_terms.covered_until_date') }}
            else as_of.after_as_of_month
        end as covered_to_month
    from graced_terms
    inner join as_of on graced_terms.vendor_id = as_of.vendor_id

),

segment_starts as (

    -- A license's months begin at its first term's month; the covering terms change only at
    -- a term's first covered month or the month after its last.
    select
        licenses.vendor_id,
        licenses.license_key,
        {{ month_start('licenses.first_term_start_date') }} as segment_month
    from licenses
    union
    select
        term_months.vendor_id,
        term_months.license_key,
        case
            when sides.is_from then term_months.covered_from_month
            else term_months.covered_to_month
        end as segment_month
    from term_months
    cross join (values (true), (false)) as sides (is_from)

),

segments as (

    -- Segment n of a license: the months [segment_month, next segment's month), up to the month
    -- of as_of_date; valued on the snapshot day of its first month.
    select
        segment_starts.vendor_id,
        segment_starts.license_key,
        segment_starts.segment_month,
        {{ add_months(
            'coalesce(lead(segment_starts.segment_month) over ('
            ~ 'partition by segment_starts.vendor_id, segment_starts.license_key'
            ~ ' order by segment_starts.segment_month), as_of.after_as_of_month)',
            -1
        ) }} as segment_last_month,
        {{ snapshot_day('segment_starts.segment_month', 'as_of.as_of_date') }} as value_date,
        row_number() over (
            partition by segment_starts.vendor_id, segment_starts.license_key
            order by segment_starts.segment_month
        ) as segment_number,
        count(*) over (
            partition by segment_starts.vendor_id, segment_starts.license_key
        ) as license_segments
    from segment_starts
    inner join as_of on segment_starts.vendor_id = as_of.vendor_id
    where segment_starts.segment_month <= as_of.as_of_month

),

term_segments as (

    -- The segments a term covers: from the one starting at its first covered month to the one
    -- before its end's (the last one when it covers past as_of_date).
    select
        term_months.vendor_id,
        term_months.license_key,
        term_months.term_id,
        term_months.term_start_date,
        term_months.term_end_date,
        term_months.monthly_value,
        {{ numbers_from_to(
            'first_segment.segment_number',
            'coalesce(end_segment.segment_number - 1, first_segment.license_segments)'
        ) }} as segment_number
    from term_months
    inner join segments as first_segment
        on
            term_months.vendor_id = first_segment.vendor_id
            and term_months.license_key = first_segment.license_key
            and term_months.covered_from_month = first_segment.segment_month
    left join segments as end_segment
        on
            term_months.vendor_id = end_segment.vendor_id
            and term_months.license_key = end_segment.license_key
            and term_months.covered_to_month = end_segment.segment_month

),

days_before_ends as (

    -- The day before an end whose MRR is lost (cancelled) or at stake (pending, due), unless it
    -- is a snapshot day already (a month's last day, or as_of_date): no dedup over all days.
    select
        term_ends.vendor_id,
        term_ends.license_key,
        cast(term_ends.end_date - 1 as date) as value_date
    from term_ends
    inner join as_of on term_ends.vendor_id = as_of.vendor_id
    where
        not term_ends.is_inside_term
        and (
            term_ends.outcome in ('cancelled', 'pending')
            or term_ends.end_date between as_of.as_of_date + 1 and as_of.as_of_date + 90
        )
        and not (
            term_ends.end_date - 1 <= as_of.as_of_date
            and (
                term_ends.end_date - 1 = {{ month_end('term_ends.end_date - 1') }}
                or term_ends.end_date - 1 = as_of.as_of_date
            )
        )

),

covering as (

    -- The terms covering each valued day: a segment's first snapshot day, or a day before an
    -- end (never a snapshot day, so the two never share a day).
    select
        segments.vendor_id,
        segments.license_key,
        segments.value_date,
        term_segments.term_id,
        term_segments.term_start_date,
        term_segments.term_end_date,
        term_segments.monthly_value
    from term_segments
    inner join segments
        on
            term_segments.vendor_id = segments.vendor_id
            and term_segments.license_key = segments.license_key
            and term_segments.segment_number = segments.segment_number
    union all
    select
        days_before_ends.vendor_id,
        days_before_ends.license_key,
        days_before_ends.value_date,
        graced_terms.term_id,
        graced_terms.term_start_date,
        graced_terms.term_end_date,
        graced_terms.monthly_value
    from days_before_ends
    inner join graced_terms
        on
            days_before_ends.vendor_id = graced_terms.vendor_id
            and days_before_ends.license_key = graced_terms.license_key
    where
        graced_terms.term_start_date <= days_before_ends.value_date
        and days_before_ends.value_date < graced_terms.covered_until_date

),

layered as (

    -- Layers: a covering term is superseded by one that started later and ends on another day
    -- (a restarted term, a billing switch), or started the same day and ends later. One that
    -- started later and ends the same day (a co-terminated prorated upgrade) adds to it.
    select
        covering.*,
        {{ is_superseded_layer('covering') }} as is_superseded
    from covering

),

valued as (

    select
        vendor_id,
        license_key,
        value_date,
        sum(monthly_value) filter (where not is_superseded) as mrr,
        count(*) filter (where not is_superseded) as layers,
        {{ arg_max('term_id', ['term_start_date', 'term_end_date']) }} as term_id
    from layered
    group by vendor_id, license_key, value_date

),

requested as (

    select
        vendor_id,
        license_key,
        value_date,
        segment_month,
        segment_last_month,
        true as is_snapshot
    from segments
    union all
    select
        vendor_id,
        license_key,
        value_date,
        {{ month_start('value_date') }} as segment_month,
        {{ month_start('value_date') }} as segment_last_month,
        false as is_snapshot
    from days_before_ends

),

final as (

    select
        requested.vendor_id,
        requested.license_key,
        licenses.addon_key,
        requested.segment_month as first_month,
        requested.segment_last_month as last_month,
        requested.value_date,
        requested.is_snapshot,
        valued.term_id,
        coalesce(valued.layers, 0) as layers,
        cast(coalesce(valued.mrr, 0) as {{ money() }}) as mrr
    from requested
    inner join licenses
        on
            requested.vendor_id = licenses.vendor_id
            and requested.license_key = licenses.license_key
    left join valued
        on
            requested.vendor_id = valued.vendor_id
            and requested.license_key = valued.license_key
            and requested.value_date = valued.value_date

)

select * from final
