{#- Fails with every row where the SQL expression is not true (false or null): invariants such as
    "churn_rate + renewal_rate = 1". Restrict the rows with the test's `where` config. -#}
{% test expression_is_true(model, expression, column_name=none) %}

with

checked as (

    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)

)

select * from checked

{% endtest %}
