-- Every distinct end date e of a license's counted terms, all hostings (METRICS.md "Renewal and
-- churn", exact rule 5): whether e lies strictly inside another counted term (a move, not an
-- opportunity), and for e <= as_of_date the outcome: renewed, cancelled or pending. Cloud's
-- renewal opportunities, grace in MRR, churn events and the renewal book all read it.

with

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

ends as (

    -- Where several terms end on one day, the latest paid line among them (exact rule 2)
    -- decides the app, billing period, tier and partner of the end.
    select {{ distinct_on('vendor_id, license_key, term_end_date') }}
        vendor_id,
        license_key,
        term_end_date as end_date,
        term_start_date as ended_term_start_date,
        hosting,
        addon_key,
        billing_period,
        tier,
        partner_name,
        latest_transaction_id
    from terms
    {{ distinct_on_order('vendor_id, license_key, term_end_date', latest_paid_first('latest_')) }}

),

events as (

    -- Ends and term starts on one time line per license, so that "inside another term" and
    -- "the first term starting in [e, e + grace_days]" are window functions, not range joins.
    -- At one date an end sorts before the terms starting that day: a term starting at e is not
    -- one that e lies inside, and it can renew e.
    select
        vendor_id,
        license_key,
        end_date as event_date,
        0 as event_order,
        end_date,
        cast(null as date) as term_start_date,
        cast(null as date) as term_end_date,
        cast(null as date) as first_sale_date,
        cast(null as varchar) as first_transaction_line_item_id,
        cast(null as varchar) as first_transaction_id
    from ends
    union all
    select
        vendor_id,
        license_key,
        term_start_date as event_date,
        1 as event_order,
        null as end_date,
        term_start_date,
        term_end_date,
        first_sale_date,
        cast(first_transaction_line_item_id as varchar) as first_transaction_line_item_id,
        cast(first_transaction_id as varchar) as first_transaction_id
    from terms

),

scanned as (

    select
        *,
        max(term_end_date) over earlier as latest_end_of_earlier_terms,
        -- the first term starting on or after e; where several start that day, the one sold
        -- first (exact rule 2, earliest first)
        {{ first_non_null('term_start_date', 'later') }} as next_term_start_date,
        {{ first_non_null('first_transaction_id', 'later') }} as next_term_transaction_id
    from events
    window
        timeline as (
            partition by vendor_id, license_key
            order by
                event_date asc,
                event_order asc,
                first_sale_date asc,
                {{ text_key('first_transaction_line_item_id') }} asc,
                {{ text_key('first_transaction_id') }} asc
        ),
        earlier as (timeline rows between unbounded preceding and 1 preceding),
        later as (timeline rows between 1 following and unbounded following)

),

resolved as (

    select
        ends.*,
        coalesce(scanned.latest_end_of_earlier_terms > ends.end_date, false) as is_inside_term,
        case
            when scanned.next_term_start_date <= ends.end_date + {{ var('grace_days') }}
                then scanned.next_term_start_date
        end as renewal_start_date,
        case
            when scanned.next_term_start_date <= ends.end_date + {{ var('grace_days') }}
                then scanned.next_term_transaction_id
        end as renewal_transaction_id
    from ends
    inner join scanned
        on
            ends.vendor_id = scanned.vendor_id
            and ends.license_key = scanned.license_key
            and ends.end_date = scanned.end_date
            and scanned.event_order = 0

),

final as (

    select
        md5(concat_ws('|', resolved.license_key, resolved.end_date)) as term_end_id,
        resolved.vendor_id,
        resolved.license_key,
        resolved.hosting,
        resolved.addon_key,
        resolved.billing_period,
        resolved.tier,
        resolved.partner_name,
        resolved.latest_transaction_id,
        {{ month_start('resolved.end_date') }} as month,
        resolved.end_date,
        resolved.ended_term_start_date,
        resolved.is_inside_term,
        -- an opportunity: not inside another term and not after as_of_date
        not resolved.is_inside_term and resolved.end_date <= as_of.as_of_date as is_opportunity,
        case
            when resolved.is_inside_term or resolved.end_date > as_of.as_of_date then null
            when resolved.renewal_start_date is not null then 'renewed'
            when resolved.end_date + {{ var('grace_days') }} <= as_of.as_of_date then 'cancelled'
            else 'pending'
        end as outcome,
        resolved.renewal_start_date,
        resolved.renewal_transaction_id
    from resolved
    inner join as_of on resolved.vendor_id = as_of.vendor_id

)

select * from final
