{#- dbt's relationships test, within one vendor: fails with every row whose non-null value of the
    column has no row of `to` with the same value of `field` for the same vendor_id. Every key
    of this project is unique per vendor only, so dbt's one-column test would pass a row that
    points at another vendor's app, license or customer. -#}
{% test relationships_within_vendor(model, column_name, to, field) %}

with

child as (

    select
        vendor_id,
        {{ column_name }} as key_value
    from {{ model }}
    where {{ column_name }} is not null

),

parent as (

    select
        vendor_id,
        {{ field }} as key_value
    from {{ to }}

),

final as (

    select child.*
    from child
    where not exists (
        select 1
        from parent
        where
            parent.vendor_id = child.vendor_id
            and parent.key_value = child.key_value
    )

)

select * from final

{% endtest %}
