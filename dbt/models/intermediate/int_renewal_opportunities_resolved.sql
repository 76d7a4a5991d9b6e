-- Renewal opportunities of METRICS.md (Cloud): each distinct end date of a license's counted
-- terms that is not inside another of its terms and not after as_of_date, with its outcome.

with

term_ends as (

    select * from {{ ref('int_term_ends_resolved') }}

),

final as (

    select
        term_end_id as renewal_opportunity_id,
        vendor_id,
        license_key,
        addon_key,
        billing_period,
        month,
        end_date,
        ended_term_start_date,
        outcome,
        renewal_start_date,
        renewal_transaction_id
    from term_ends
    where hosting = 'Cloud' and is_opportunity

)

select * from final
