-- A license's MRR on the days the marts read it (METRICS.md "Recurring revenue", v2): the
-- snapshot day of every month from the month its first counted term starts to the month of
-- as_of_date, and the day before each end that churn events and the renewal book value. The one
-- place that applies grace in MRR and layers.

with

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

term_ends as (

    select * from {{ ref('int_term_ends_resolved') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

licenses as (

    -- Exact rule 6: a license reports under the app of its counted term with the latest
    -- (start, end), for its whole history.
    select distinct on (license_key)
        license_key,
        addon_key,
        min(term_start_date) over (partition by license_key) as first_term_start_date
    from terms
    order by license_key asc, term_start_date desc, term_end_date desc

),

license_months as (

    select
        licenses.license_key,
        {{ months_from_to(
            month_start('licenses.first_term_start_date'), month_start('as_of.as_of_date')
        ) }} as month
    from licenses
    cross join as_of

),

snapshot_days as (

    -- The month's last day; in the month of as_of_date, as_of_date itself (the month so far).
    select
        license_months.license_key,
        least({{ month_end('license_months.month') }}, as_of.as_of_date) as value_date,
        true as is_snapshot
    from license_months
    cross join as_of

),

days_before_ends as (

    -- The day before an end whose MRR is lost (cancelled) or at stake (pending, due), unless it
    -- is a snapshot day already (a month's last day, or as_of_date): no dedup over all days.
    select
        term_ends.license_key,
        cast(term_ends.end_date - 1 as date) as value_date,
        false as is_snapshot
    from term_ends
    cross join as_of
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

requested as (

    select * from snapshot_days
    union all
    select * from days_before_ends

),

graced_terms as (

    -- Grace in MRR (exact rule 5): a term ending at a renewed or still pending opportunity e
    -- also covers [e, e + grace_days), so a late renewal is neither churn nor reactivation.
    select
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
            terms.license_key = term_ends.license_key
            and terms.term_end_date = term_ends.end_date

),

term_months as (

    -- The months a term may cover a requested day in, generated from the terms (a few each)
    -- rather than by a range join of every requested day with every term.
    select
        graced_terms.license_key,
        graced_terms.term_id,
        graced_terms.term_start_date,
        graced_terms.term_end_date,
        graced_terms.covered_until_date,
        graced_terms.monthly_value,
        {{ months_from_to(
            month_start('graced_terms.term_start_date'),
            month_start('least(graced_terms.covered_until_date - 1, as_of.as_of_date + 90)')
        ) }} as month
    from graced_terms
    cross join as_of

),

covering as (

    select
        requested.license_key,
        requested.value_date,
        term_months.term_id,
        term_months.term_start_date,
        term_months.term_end_date,
        term_months.monthly_value
    from requested
    inner join term_months
        on
            requested.license_key = term_months.license_key
            and {{ month_start('requested.value_date') }} = term_months.month
    where
        term_months.term_start_date <= requested.value_date
        and requested.value_date < term_months.covered_until_date

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
        license_key,
        value_date,
        sum(monthly_value) filter (where not is_superseded) as mrr,
        count(*) filter (where not is_superseded) as layers,
        {{ arg_max('term_id', ['term_start_date', 'term_end_date']) }} as term_id
    from layered
    group by license_key, value_date

),

final as (

    select
        requested.license_key,
        licenses.addon_key,
        {{ month_start('requested.value_date') }} as month,
        requested.value_date,
        requested.is_snapshot,
        valued.term_id,
        coalesce(valued.layers, 0) as layers,
        cast(coalesce(valued.mrr, 0) as {{ money() }}) as mrr
    from requested
    inner join licenses on requested.license_key = licenses.license_key
    left join valued
        on
            requested.license_key = valued.license_key
            and requested.value_date = valued.value_date

)

select * from final
