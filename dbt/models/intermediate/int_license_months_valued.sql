-- The monthly MRR spine of METRICS.md: every license from the month its first counted term
-- starts to the month of as_of_date, valued at the month's snapshot day, zero months included.

with

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

licenses as (

    -- A license reports under the app of its latest-starting term.
    select
        license_key,
        addon_key,
        min(term_start_date) over (partition by license_key) as first_term_start_date
    from terms
    qualify row_number() over (
        partition by license_key
        order by
            term_start_date desc,
            latest_sale_date desc,
            latest_transaction_line_item_id desc,
            latest_transaction_id desc
    ) = 1

),

license_spans as (

    select
        licenses.license_key,
        licenses.addon_key,
        generate_series(
            date_trunc('month', licenses.first_term_start_date),
            date_trunc('month', as_of.as_of_date),
            interval 1 month
        ) as months
    from licenses
    cross join as_of

),

spine as (

    select
        license_key,
        addon_key,
        cast(unnest(months) as date) as month
    from license_spans

),

snapshots as (

    -- In the as_of month the month's last day has not happened yet: counting a term as ended
    -- there would call every pending renewal a churn.
    select
        spine.*,
        least(last_day(spine.month), as_of.as_of_date) as snapshot_date
    from spine
    cross join as_of

),

term_spans as (

    -- The months whose snapshot day a term may cover, generated from the terms (a few per
    -- term) rather than by a range join of every license month with every term.
    select
        terms.*,
        generate_series(
            date_trunc('month', terms.term_start_date),
            date_trunc('month', least(terms.term_end_date, as_of.as_of_date)),
            interval 1 month
        ) as months
    from terms
    cross join as_of
    where terms.term_start_date <= as_of.as_of_date

),

term_months as (

    select
        term_spans.*,
        cast(unnest(term_spans.months) as date) as month
    from term_spans

),

covering as (

    -- Where two terms cover the snapshot day, the later-starting one counts.
    select
        term_months.license_key,
        term_months.month,
        term_months.term_id,
        term_months.monthly_value
    from term_months
    cross join as_of
    where
        least(last_day(term_months.month), as_of.as_of_date) >= term_months.term_start_date
        and least(last_day(term_months.month), as_of.as_of_date) < term_months.term_end_date
    qualify row_number() over (
        partition by term_months.license_key, term_months.month
        order by
            term_months.term_start_date desc,
            term_months.latest_sale_date desc,
            term_months.latest_transaction_line_item_id desc,
            term_months.latest_transaction_id desc
    ) = 1

),

final as (

    select
        snapshots.license_key,
        snapshots.addon_key,
        snapshots.month,
        snapshots.snapshot_date,
        covering.term_id,
        coalesce(covering.monthly_value, 0) as mrr
    from snapshots
    left join covering
        on
            snapshots.license_key = covering.license_key
            and snapshots.month = covering.month

)

select * from final
