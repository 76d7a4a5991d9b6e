-- Renewal opportunities of METRICS.md (Cloud): each distinct end date of a license's counted
-- terms that is not inside another of its terms and not after as_of_date, with its outcome.

with

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded and hosting = 'Cloud'

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

ends as (

    -- Where several terms end on one day, the latest paid line among them decides the app and
    -- billing period of the opportunity.
    select
        license_key,
        term_end_date as end_date,
        term_start_date as ended_term_start_date,
        addon_key,
        billing_period
    from terms
    qualify row_number() over (
        partition by license_key, term_end_date
        order by
            latest_sale_date desc,
            latest_transaction_line_item_id desc,
            latest_transaction_id desc
    ) = 1

),

due as (

    select ends.*
    from ends
    cross join as_of
    where
        ends.end_date <= as_of.as_of_date
        -- an end inside another term is a move (upgrade that restarted the term, billing
        -- switch), not a decision to renew
        and not exists (
            select 1
            from terms as covering
            where
                covering.license_key = ends.license_key
                and covering.term_start_date < ends.end_date
                and covering.term_end_date > ends.end_date
        )

),

renewals as (

    -- The first term that starts within [e, e + grace_days]; where several start that day, the
    -- one sold first.
    select
        due.license_key,
        due.end_date,
        renewing.term_start_date as renewal_start_date,
        renewing.first_transaction_id as renewal_transaction_id
    from due
    inner join terms as renewing
        on
            due.license_key = renewing.license_key
            and due.end_date <= renewing.term_start_date
            and due.end_date + {{ var('grace_days') }} >= renewing.term_start_date
    qualify row_number() over (
        partition by due.license_key, due.end_date
        order by
            renewing.term_start_date asc,
            renewing.first_sale_date asc,
            renewing.first_transaction_line_item_id asc,
            renewing.first_transaction_id asc
    ) = 1

),

final as (

    select
        md5(concat_ws('|', due.license_key, due.end_date)) as renewal_opportunity_id,
        due.license_key,
        due.addon_key,
        due.billing_period,
        cast(date_trunc('month', due.end_date) as date) as month,
        due.end_date,
        due.ended_term_start_date,
        case
            when renewals.renewal_start_date is not null then 'renewed'
            when due.end_date + {{ var('grace_days') }} <= as_of.as_of_date then 'cancelled'
            else 'pending'
        end as outcome,
        renewals.renewal_start_date,
        renewals.renewal_transaction_id
    from due
    cross join as_of
    left join renewals
        on
            due.license_key = renewals.license_key
            and due.end_date = renewals.end_date

)

select * from final
