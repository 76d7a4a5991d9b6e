{#- METRICS.md "Terms": a paid transaction has saleType New, Renewal, Upgrade or Downgrade and
    purchasePrice > 0; a refund has saleType Refund. One definition for every model. -#}
{% macro is_paid_line(sale_type, purchase_price) -%}
    ({{ sale_type }} in ('New', 'Renewal', 'Upgrade', 'Downgrade') and coalesce({{ purchase_price }}, 0) > 0)
{%- endmacro %}


{% macro is_refund_line(sale_type) -%}
    ({{ sale_type }} = 'Refund')
{%- endmacro %}
