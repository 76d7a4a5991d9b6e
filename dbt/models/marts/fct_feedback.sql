-- Disable, uninstall and unsubscribe feedback, matched to the license it came from.

with

feedback as (

    select * from {{ ref('stg_marketplace__feedback') }}

),

licenses as (

    select * from {{ ref('stg_marketplace__licenses') }}

),

matched as (

    -- Feedback carries no license_key: Cloud rows name the entitlement, others the SEN.
    select
        feedback.feedback_id,
        licenses.license_key
    from feedback
    inner join licenses
        on
            feedback.addon_key = licenses.addon_key
            and (
                feedback.app_entitlement_id = licenses.app_entitlement_id
                or (
                    feedback.app_entitlement_id is null
                    and feedback.license_id = licenses.license_id
                )
            )
    qualify row_number() over (
        partition by feedback.feedback_id order by licenses.last_updated_date desc
    ) = 1

),

final as (

    select
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
    left join matched on feedback.feedback_id = matched.feedback_id

)

select * from final
