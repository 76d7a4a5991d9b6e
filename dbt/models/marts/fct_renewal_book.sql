-- One row per renewal due in the next 90 days (every hosting) or still pending at as_of_date
-- (Cloud): license, customer, due date and the ARR at stake (METRICS.md "The renewal book").

with

term_ends as (

    select * from {{ ref('int_term_ends_resolved') }}
    where hosting in ('Cloud', 'Server', 'Data Center') and not is_inside_term

),

license_days as (

    select * from {{ ref('int_license_days_valued') }}

),

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

book as (

    -- Exact rule 11: due rows even when a renewal starting at e is already sold.
    select
        term_ends.*,
        case
            when term_ends.end_date > as_of.as_of_date then 'due'
            else 'pending'
        end as status,
        term_ends.end_date - as_of.as_of_date as days_until_due
    from term_ends
    inner join as_of on term_ends.vendor_id = as_of.vendor_id
    where
        term_ends.end_date between as_of.as_of_date + 1 and as_of.as_of_date + 90
        or (term_ends.hosting = 'Cloud' and term_ends.outcome = 'pending')

),

final as (

    select
        book.vendor_id,
        book.license_key,
        book.end_date as due_date,
        coalesce(license_customers.customer_key, book.license_key) as customer_key,
        book.addon_key,
        book.billing_period,
        cast(book.days_until_due as integer) as days_until_due,
        -- ARR of the license (layers and grace included) on the day before the due date
        cast(coalesce(license_days.mrr, 0) * 12 as {{ money() }}) as arr_at_stake,
        book.status,
        book.hosting
    from book
    left join license_customers
        on
            book.vendor_id = license_customers.vendor_id
            and book.license_key = license_customers.license_key
    left join license_days
        on
            book.vendor_id = license_days.vendor_id
            and book.license_key = license_days.license_key
            and book.end_date - 1 = license_days.value_date

)

select * from final
