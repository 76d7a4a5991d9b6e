-- Disable, uninstall and unsubscribe feedback, matched to the license it came from.

with

feedback as (

    select * from {{ ref('stg_marketplace__feedback') }}

),

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

by_entitlement as (

    -- Feedback carries no license_key: Cloud rows name the entitlement, others the SEN. Two
    -- equi-joins, since one join on "entitlement or SEN" cannot use a hash join.
    select
        feedback.vendor_id,
        feedback.feedback_id,
        licenses.license_key,
        licenses.last_updated_date
    from feedback
    inner join licenses
        on
            feedback.vendor_id = licenses.vendor_id
            and feedback.addon_key = licenses.addon_key
            and feedback.app_entitlement_id = licenses.app_entitlement_id

),

by_sen as (

    select
        feedback.vendor_id,
        feedback.feedback_id,
        licenses.license_key,
        licenses.last_updated_date
    from feedback
    inner join licenses
        on
            feedback.vendor_id = licenses.vendor_id
            and feedback.addon_key = licenses.addon_key
            and feedback.license_id = licenses.license_id
    where feedback.app_entitlement_id is null

),

candidates as (

    select * from by_entitlement
    union all
    select * from by_sen

),

matched as (

    select {{ distinct_on('vendor_id, feedback_id') }}
        vendor_id,
        feedback_id,
        license_key
    from candidates
    {% call distinct_on_order('vendor_id, feedback_id') %}
        last_updated_date desc nulls last
    {% endcall %}

),

final as (

    select
        feedback.vendor_id,
        feedback.feedback_id,
        feedback.feedback_date,
        feedback.addon_key,
        matched.license_key,
        feedback.feedback_type,
        feedback.reason_key,
        feedback.message,
        feedback.hosting,
        feedback.app_edition,
        feedback.addon_version,
        feedback.application_key,
        feedback.application_version,
        feedback.license_id,
        feedback.app_entitlement_id,
        feedback.app_entitlement_number,
        feedback.cloud_id,
        feedback.email,
        feedback.full_name
    from feedback
    left join matched
        on
            feedback.vendor_id = matched.vendor_id
            and feedback.feedback_id = matched.feedback_id

)

select * from final
