{#- Fails with one row per combination of the columns that occurs more than once: the grain test
    of every mart (dbt_utils' test of the same name, written here because packages cannot be
    fetched offline). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grouped as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}

),

final as (

    select * from grouped
    where n_rows > 1

)

select * from final

{% endtest %}
