-- One row per cancelled Cloud renewal opportunity (license, end date): who left, after how long,
-- with how much MRR, and the feedback they gave nearest to the end (METRICS.md "Churn events").

with

term_ends as (

    select * from {{ ref('int_term_ends_resolved') }}
    where hosting = 'Cloud' and is_opportunity and outcome = 'cancelled'

),

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

license_days as (

    select * from {{ ref('int_license_days_valued') }}

),

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

feedback as (

    select * from {{ ref('fct_feedback') }}
    where license_key is not null

),

first_terms as (

    select
        vendor_id,
        license_key,
        min(term_start_date) as first_term_start_date
    from terms
    group by vendor_id, license_key

),

nearest_feedback as (

    -- Exact rule 10: within 30 days of the end; ties: the earlier date, then type, then reason.
    select {{ distinct_on('term_ends.vendor_id, term_ends.license_key, term_ends.end_date') }}
        term_ends.vendor_id,
        term_ends.license_key,
        term_ends.end_date,
        feedback.feedback_date,
        feedback.feedback_type,
        feedback.reason_key
    from term_ends
    inner join feedback
        on
            term_ends.vendor_id = feedback.vendor_id
            and term_ends.license_key = feedback.license_key
    where abs(feedback.feedback_date - term_ends.end_date) <= 30
    {% call distinct_on_order('term_ends.vendor_id, term_ends.license_key, term_ends.end_date') %}
        abs(feedback.feedback_date - term_ends.end_date) asc,
        feedback.feedback_date asc,
        {{ text_key('feedback.feedback_type') }} asc,
        {{ text_key('feedback.reason_key') }} asc
    {% endcall %}

),

final as (

    select
        term_ends.vendor_id,
        term_ends.license_key,
        term_ends.end_date,
        coalesce(license_customers.customer_key, term_ends.license_key) as customer_key,
        term_ends.addon_key,
        term_ends.billing_period,
        term_ends.tier,
        term_ends.partner_name,
        {{ months_between('first_terms.first_term_start_date', 'term_ends.end_date') }}
            as tenure_months,
        -- the license's MRR (layers and grace included) on the day before the end
        cast(coalesce(license_days.mrr, 0) as {{ money() }}) as mrr_lost,
        nearest_feedback.feedback_type,
        nearest_feedback.reason_key as feedback_reason,
        nearest_feedback.feedback_date,
        term_ends.month
    from term_ends
    inner join first_terms
        on
            term_ends.vendor_id = first_terms.vendor_id
            and term_ends.license_key = first_terms.license_key
    left join license_customers
        on
            term_ends.vendor_id = license_customers.vendor_id
            and term_ends.license_key = license_customers.license_key
    left join license_days
        on
            term_ends.vendor_id = license_days.vendor_id
            and term_ends.license_key = license_days.license_key
            and term_ends.end_date - 1 = license_days.value_date
    left join nearest_feedback
        on
            term_ends.vendor_id = nearest_feedback.vendor_id
            and term_ends.license_key = nearest_feedback.license_key
            and term_ends.end_date = nearest_feedback.end_date

)

select * from final
