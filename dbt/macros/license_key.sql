{#- METRICS.md "Identities": Cloud licenses are keyed by appEntitlementId when present, else
    addonLicenseId; Server and Data Center by addonLicenseId. Data Center licenses gained
    entitlement numbers in 2025, so keying on them would duplicate licenses. -#}
{% macro license_key(hosting, app_entitlement_id, addon_license_id) -%}
    case
        when {{ hosting }} = 'Cloud' then coalesce({{ app_entitlement_id }}, {{ addon_license_id }})
        else {{ addon_license_id }}
    end
{%- endmacro %}
