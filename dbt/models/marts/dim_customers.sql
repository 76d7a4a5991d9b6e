-- Every customer (a Cloud site, a Server / Data Center instance, else a lone license) with its
-- hostings, apps, first paid month, first hosting and current MRR.

with

license_customers as (

    select * from {{ ref('int_license_customers') }}

),

terms as (

    select * from {{ ref('int_terms_netted') }}
    where not is_refunded

),

customer_months as (

    select * from {{ ref('int_customer_months_valued') }}

),

as_of as (

    select
        vendor_id,
        as_of_date
    from {{ ref('int_as_of_date') }}

),

first_terms as (

    select
        vendor_id,
        license_key,
        min(term_start_date) as first_term_start_date
    from terms
    group by vendor_id, license_key

),

first_hostings as (

    -- Exact rule 8: the hosting of the license whose first counted term starts earliest (ties:
    -- the smallest license_key).
    select {{ distinct_on('license_customers.vendor_id, license_customers.customer_key') }}
        license_customers.vendor_id,
        license_customers.customer_key,
        license_customers.hosting as first_hosting
    from license_customers
    inner join first_terms
        on
            license_customers.vendor_id = first_terms.vendor_id
            and license_customers.license_key = first_terms.license_key
    {% call distinct_on_order('license_customers.vendor_id, license_customers.customer_key') %}
        first_terms.first_term_start_date asc,
        {{ text_key('license_customers.license_key') }} asc
    {% endcall %}

),

contacts as (

    -- The company of the most recently updated license record names the customer.
    select {{ distinct_on('vendor_id, customer_key') }}
        vendor_id,
        customer_key,
        company,
        country,
        region
    from license_customers
    {% call distinct_on_order('vendor_id, customer_key') %}
        has_license_record desc,
        last_updated_date desc nulls last,
        {{ text_key('license_key') }} asc
    {% endcall %}

),

summed as (

    select
        vendor_id,
        customer_key,
        array_agg(distinct hosting order by hosting) filter (where hosting is not null)
            as hostings,
        array_agg(distinct addon_key order by addon_key) filter (where addon_key is not null)
            as apps,
        count(*) as licenses,
        count(*) filter (where is_migrated) as migrated_licenses
    from license_customers
    group by vendor_id, customer_key

),

paid_months as (

    select
        customer_months.vendor_id,
        customer_months.customer_key,
        min(customer_months.month) filter (where {{ has_mrr('customer_months.mrr') }})
            as first_paid_month,
        coalesce(
            max(customer_months.mrr) filter (
                where customer_months.month = {{ month_start('as_of.as_of_date') }}
            ),
            0
        ) as current_mrr
    from customer_months
    inner join as_of on customer_months.vendor_id = as_of.vendor_id
    group by customer_months.vendor_id, customer_months.customer_key

),

final as (

    select
        summed.vendor_id,
        summed.customer_key,
        summed.hostings,
        summed.apps,
        paid_months.first_paid_month,
        first_hostings.first_hosting,
        cast(coalesce(paid_months.current_mrr, 0) as {{ money() }}) as current_mrr,
        contacts.company,
        contacts.country,
        contacts.region,
        summed.licenses,
        summed.migrated_licenses,
        {{ has_mrr('coalesce(paid_months.current_mrr, 0)') }} as is_paying
    from summed
    left join first_hostings
        on
            summed.vendor_id = first_hostings.vendor_id
            and summed.customer_key = first_hostings.customer_key
    left join contacts
        on
            summed.vendor_id = contacts.vendor_id
            and summed.customer_key = contacts.customer_key
    left join paid_months
        on
            summed.vendor_id = paid_months.vendor_id
            and summed.customer_key = paid_months.customer_key

)

select * from final
