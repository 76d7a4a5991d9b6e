-- The marts beside Atlassian's own churn, renewal and conversion figures (metric_aggregates),
-- per month, app and billing period or conversion type, with the differences.

with

atlassian as (

    select * from {{ ref('stg_marketplace__metric_aggregates') }}
    where aggregation = 'month' and addon_key is not null

),

churn as (

    select * from {{ ref('fct_churn') }}

),

renewal as (

    select * from {{ ref('fct_renewal') }}

),

conversion as (

    select * from {{ ref('fct_conversion') }}

),

atlassian_figures as (

    -- Atlassian's series: churn Customers / Cancellations, renewal Renewal opportunities /
    -- Renewals, conversion Evaluations / Conversions (split by conversion type when asked for).
    select
        vendor_id,
        metric,
        period_start_date as month,
        addon_key,
        coalesce(
            case when metric = 'conversion' then conversion_type else billing_period end, 'All'
        ) as segment,
        sum(event_count) filter (
            where series in ('Customers', 'Renewal opportunities', 'Evaluations')
        ) as denominator,
        sum(event_count) filter (where series in ('Cancellations', 'Renewals', 'Conversions'))
            as numerator
    from atlassian
    where metric in ('churn', 'renewal', 'conversion')
    group by vendor_id, metric, month, addon_key, segment

),

mart_figures as (

    select
        vendor_id,
        'churn' as metric,
        month,
        addon_key,
        billing_period as segment,
        opportunities as denominator,
        cancellations as numerator
    from churn
    union all
    select
        vendor_id,
        'renewal' as metric,
        month,
        addon_key,
        billing_period as segment,
        opportunities as denominator,
        renewals as numerator
    from renewal
    union all
    select
        vendor_id,
        'conversion' as metric,
        month,
        addon_key,
        conversion_type as segment,
        evaluations as denominator,
        conversions as numerator
    from conversion
    union all
    -- for Atlassian figures not split by conversion type
    select
        vendor_id,
        'conversion' as metric,
        month,
        addon_key,
        'All' as segment,
        sum(evaluations) as denominator,
        sum(conversions) as numerator
    from conversion
    group by vendor_id, month, addon_key

),

reported_scope as (

    -- Compare only what Atlassian reported: its metrics, segments and range of months.
    select
        vendor_id,
        metric,
        segment,
        min(month) as first_month,
        max(month) as last_month
    from atlassian_figures
    group by vendor_id, metric, segment

),

compared as (

    select
        coalesce(mart_figures.vendor_id, atlassian_figures.vendor_id) as vendor_id,
        coalesce(mart_figures.metric, atlassian_figures.metric) as metric,
        coalesce(mart_figures.month, atlassian_figures.month) as month,
        coalesce(mart_figures.addon_key, atlassian_figures.addon_key) as addon_key,
        coalesce(mart_figures.segment, atlassian_figures.segment) as segment,
        coalesce(mart_figures.denominator, 0) as mart_denominator,
        coalesce(atlassian_figures.denominator, 0) as atlassian_denominator,
        coalesce(mart_figures.numerator, 0) as mart_numerator,
        coalesce(atlassian_figures.numerator, 0) as atlassian_numerator
    from mart_figures
    full outer join atlassian_figures
        on
            mart_figures.vendor_id = atlassian_figures.vendor_id
            and mart_figures.metric = atlassian_figures.metric
            and mart_figures.month = atlassian_figures.month
            and mart_figures.addon_key = atlassian_figures.addon_key
            and mart_figures.segment = atlassian_figures.segment

),

in_scope as (

    select compared.*
    from compared
    inner join reported_scope
        on
            compared.vendor_id = reported_scope.vendor_id
            and compared.metric = reported_scope.metric
            and compared.segment = reported_scope.segment
            and compared.month between reported_scope.first_month and reported_scope.last_month

),

final as (

    select
        vendor_id,
        metric,
        month,
        addon_key,
        case when metric = 'conversion' then 'conversion_type' else 'billing_period' end
            as segment_type,
        segment,
        case metric
            when 'churn' then 'Customers'
            when 'renewal' then 'Renewal opportunities'
            else 'Evaluations'
        end as denominator_series,
        case metric
            when 'churn' then 'Cancellations'
            when 'renewal' then 'Renewals'
            else 'Conversions'
        end as numerator_series,
        mart_denominator,
        atlassian_denominator,
        mart_denominator - atlassian_denominator as denominator_difference,
        mart_numerator,
        atlassian_numerator,
        mart_numerator - atlassian_numerator as numerator_difference,
        {{ safe_ratio('mart_numerator', 'mart_denominator') }} as mart_rate,
        {{ safe_ratio('atlassian_numerator', 'atlassian_denominator') }} as atlassian_rate,
        {{ safe_ratio('mart_numerator', 'mart_denominator') }}
        - {{ safe_ratio('atlassian_numerator', 'atlassian_denominator') }} as rate_difference,
        mart_denominator = atlassian_denominator
        and mart_numerator = atlassian_numerator as is_matched
    from in_scope

)

select * from final
