-- Every license (from its license record or, failing that, its latest transaction line) with the
-- customer it belongs to (METRICS.md "customer_key", exact rule 8): the instance the apps are
-- installed on, a Cloud license migrated from Server / Data Center joining that license's customer.

with

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

transactions as (

    select * from {{ ref('stg_marketplace__transactions') }}

),

transaction_only_licenses as (

    -- Lines can arrive before their license record (the API's reports lag each other): such a
    -- license takes the cloudId / hostLicenseId of its latest line.
    select {{ distinct_on('vendor_id, license_key') }}
        vendor_id,
        license_key,
        addon_key,
        hosting,
        cloud_id,
        host_license_id,
        company,
        country,
        region,
        last_updated_date
    from transactions
    where
        license_key is not null
        and not exists (
            select 1 from licenses
            where
                licenses.vendor_id = transactions.vendor_id
                and licenses.license_key = transactions.license_key
        )
    {{ distinct_on_order('vendor_id, license_key', latest_paid_first()) }}

),

all_licenses as (

    select
        vendor_id,
        license_key,
        addon_key,
        hosting,
        cloud_id,
        host_license_id,
        license_id,
        addon_license_id,
        related_on_prem_license,
        company,
        country,
        region,
        last_updated_date,
        true as has_license_record
    from licenses
    union all
    select
        vendor_id,
        license_key,
        addon_key,
        hosting,
        cloud_id,
        host_license_id,
        null as license_id,
        null as addon_license_id,
        null as related_on_prem_license,
        company,
        country,
        region,
        last_updated_date,
        false as has_license_record
    from transaction_only_licenses

),

own_customers as (

    -- The instance: a Cloud site (cloudId) or a Server / Data Center host (hostLicenseId).
    select
        *,
        coalesce(
            case
                when hosting = 'Cloud' then cloud_id
                when hosting in ('Server', 'Data Center') then host_license_id
            end,
            license_key
        ) as own_customer_key
    from all_licenses

),

on_prem_ids as (

    -- The ids a Cloud license's cmtDetails.relatedOnPremLicense may name, whatever its status.
    select
        vendor_id,
        license_id as on_prem_id,
        own_customer_key
    from own_customers
    where has_license_record and hosting in ('Server', 'Data Center') and license_id is not null
    union
    select
        vendor_id,
        addon_license_id as on_prem_id,
        own_customer_key
    from own_customers
    where
        has_license_record
        and hosting in ('Server', 'Data Center')
        and addon_license_id is not null

),

migrations as (

    -- An id naming licenses of several customers (never seen) resolves to the smallest key.
    select
        vendor_id,
        on_prem_id,
        min({{ text_key('own_customer_key') }}) as customer_key
    from on_prem_ids
    group by vendor_id, on_prem_id

),

final as (

    select
        own_customers.vendor_id,
        own_customers.license_key,
        coalesce(migrations.customer_key, own_customers.own_customer_key) as customer_key,
        migrations.customer_key is not null as is_migrated,
        own_customers.own_customer_key,
        own_customers.addon_key,
        own_customers.hosting,
        own_customers.related_on_prem_license,
        own_customers.company,
        own_customers.country,
        own_customers.region,
        own_customers.last_updated_date,
        own_customers.has_license_record
    from own_customers
    left join migrations
        on
            own_customers.vendor_id = migrations.vendor_id
            and own_customers.hosting = 'Cloud'
            and own_customers.related_on_prem_license = migrations.on_prem_id

)

select * from final
