{#- The rules of METRICS.md (contract v2) that more than one model applies, written once. -#}

{% macro money() -%}
    {#- Amounts in marts: DECIMAL, so that sums of movements are exact. Eighteen decimals: the
        rounding of amount / months (<= 5e-19) stays far below the contract's 1e-9 threshold and
        does not show in the rates either: with eight, a month whose only churn was a cent of
        drift (0.01 / 12) had a quick_ratio 4e-6 off the exact one. 20 integer digits: any
        vendor's sums. -#}
    decimal(38, 18)
{%- endmacro %}


{% macro whole_months(start_date, end_date) -%}
    {#- The greatest m with start + m months <= end. Counting month boundaries overshoots by one
        when the end's day of month falls before the start's. -#}
    {%- set boundaries = month_boundaries(start_date, end_date) -%}
    (
        {{ boundaries }}
        - case
            when {{ add_months(start_date, boundaries) }} > {{ end_date }} then 1
            else 0
        end
    )
{%- endmacro %}


{% macro months_between(start_date, end_date) -%}
    {#- METRICS.md "Term length": whole calendar months, plus the days left over as a fraction of
        the calendar month that follows. Annual = 12, Monthly = 1, Jul 1 -> Jan 1 = 6. -#}
    {%- set m = whole_months(start_date, end_date) -%}
    {#- Days as double precision: Postgres divides integers to an integer. -#}
    cast(
        {{ m }}
        + cast({{ end_date }} - {{ add_months(start_date, m) }} as double precision)
        / ({{ add_months(start_date, m ~ ' + 1') }} - {{ add_months(start_date, m) }})
        as double precision
    )
{%- endmacro %}


{% macro latest_paid_first(prefix='') -%}
    {#- METRICS.md exact rule 2, the one tie rule: the latest paid line is the greatest
        (saleDate, transactionLineItemId, transactionId), the ids compared as text. Nulls last,
        as DuckDB sorts them (Postgres puts them first in a descending order). -#}
    {{ prefix }}sale_date desc nulls last,
    {{ text_key(prefix ~ 'transaction_line_item_id') }} desc nulls last,
    {{ text_key(prefix ~ 'transaction_id') }} desc nulls last
{%- endmacro %}


{% macro earliest_paid_first(prefix='') -%}
    {#- The same order reversed: the line sold first. -#}
    {{ prefix }}sale_date asc,
    {{ text_key(prefix ~ 'transaction_line_item_id') }} asc,
    {{ text_key(prefix ~ 'transaction_id') }} asc
{%- endmacro %}


{% macro snapshot_day(month, as_of_date) -%}
    {#- The day a month's MRR is read on (v2 "Snapshot day"): its last day; in the month of
        as_of_date, as_of_date itself (the month so far). -#}
    least({{ month_end(month) }}, {{ as_of_date }})
{%- endmacro %}


{% macro has_mrr(value) -%}
    {#- "MRR > 0" means MRR > 1e-9 (exact rule 6). -#}
    ({{ value }} > 1e-9)
{%- endmacro %}


{% macro run_before(partition_by) -%}
    {#- Over runs of months with one MRR each (columns `first_month`, `mrr`) that tile each
        `partition_by`'s months: the MRR of the run before (0 before the first) and the
        partition's first month with MRR > 0. Per run, not per month: a window over the runs
        instead of over ~20M license-months on the large vendor. -#}
    {%- set run_order = 'partition by ' ~ partition_by ~ ' order by first_month' -%}
    coalesce(lag(mrr) over ({{ run_order }}), 0) as prior_run_mrr,
    min(first_month) filter (where {{ has_mrr('mrr') }}) over (
        {{ run_order }} rows between unbounded preceding and unbounded following
    ) as first_paid_month
{%- endmacro %}


{% macro run_movements() -%}
    {#- For a run (after run_before): the movement into its first month, from the run before,
        and into each later month, from the month before in the same run (the rule on equal
        MRR: unchanged). Classified once per run, not once per month. -#}
    {{ mrr_movement('mrr', 'prior_run_mrr', 'coalesce(first_paid_month < first_month, false)') }}
        as first_month_movement,
    {{ mrr_movement('mrr', 'mrr', 'true') }} as later_month_movement
{%- endmacro %}


{% macro month_before(month) -%}
    {#- For a month of a run (columns of run_before and run_movements beside it): the MRR of
        the month before (0 before the first), whether an earlier month had MRR > 0, and the
        movement between the two. Inside a run the month before has the run's own MRR. -#}
    case when {{ month }} = first_month then prior_run_mrr else mrr end as prior_month_mrr,
    coalesce(first_paid_month < {{ month }}, false) as had_mrr_before,
    case
        when {{ month }} = first_month then first_month_movement else later_month_movement
    end as movement
{%- endmacro %}


{% macro mrr_movement(mrr, prior_mrr, had_mrr_before) -%}
    {#- METRICS.md movements, no tolerance: any difference over 1e-9 is a movement, so a month's
        movements add up exactly to closing minus opening MRR. -#}
    case
        when {{ has_mrr(mrr) }} and {{ has_mrr(prior_mrr) }} and {{ mrr }} - {{ prior_mrr }} > 1e-9
            then 'expansion'
        when {{ has_mrr(mrr) }} and {{ has_mrr(prior_mrr) }} and {{ prior_mrr }} - {{ mrr }} > 1e-9
            then 'contraction'
        when {{ has_mrr(mrr) }} and {{ has_mrr(prior_mrr) }} then 'unchanged'
        when {{ has_mrr(mrr) }} and {{ had_mrr_before }} then 'reactivation'
        when {{ has_mrr(mrr) }} then 'new'
        when {{ has_mrr(prior_mrr) }} then 'churn'
        else 'unchanged'
    end
{%- endmacro %}


{% macro safe_ratio(numerator, denominator) -%}
    {#- A rate as a fraction, null on a zero denominator (exact rule 12). -#}
    cast({{ numerator }} as double precision) / nullif(cast({{ denominator }} as double precision), 0)
{%- endmacro %}


{% macro retention_rates(relation_alias) -%}
    {#- METRICS.md "Retention cohorts": NRR, GRR and logo retention of summed cohort figures. -#}
    {{ safe_ratio(relation_alias ~ '.mrr', relation_alias ~ '.starting_mrr') }} as nrr,
    {{ safe_ratio(relation_alias ~ '.retained_mrr', relation_alias ~ '.starting_mrr') }} as grr,
    {{ safe_ratio(relation_alias ~ '.active_customers', relation_alias ~ '.customers') }}
        as logo_retention
{%- endmacro %}


{% macro is_superseded_layer(covering) -%}
    {#- METRICS.md layers, for a row of `covering` (vendor_id, license_key, value_date, term_start_date,
        term_end_date: one row per term covering a license's day): true when another term
        covering that day started later and ends on another day, or started the same day and
        ends later. -#}
    {{ return(adapter.dispatch('is_superseded_layer')(covering)) }}
{%- endmacro %}

{% macro duckdb__is_superseded_layer(covering) -%}
    {#- A semi-join on (license, day), which DuckDB runs as a hash join (no range join): 30%
        faster than a self-join + group by on 100k licenses. -#}
    exists(
        select 1
        from {{ covering }} as other
        where
            other.vendor_id = {{ covering }}.vendor_id
            and other.license_key = {{ covering }}.license_key
            and other.value_date = {{ covering }}.value_date
            and (
                (
                    other.term_start_date > {{ covering }}.term_start_date
                    and other.term_end_date != {{ covering }}.term_end_date
                )
                or (
                    other.term_start_date = {{ covering }}.term_start_date
                    and other.term_end_date > {{ covering }}.term_end_date
                )
            )
    )
{%- endmacro %}

{% macro default__is_superseded_layer(covering) -%}
    {#- The same test as counts over the day's terms, no join: Postgres runs the semi-join once
        per row, or with a hash table sized for its guess of the generated months (16M batches:
        82 s on the small vendor's 8.7k rows). Terms starting later, less those of them ending
        the same day, is more than none; or a term of the same start ends later. -#}
    {%- set day = 'partition by vendor_id, license_key, value_date' -%}
    (
        count(*) over ({{ day }})
        - count(*) over ({{ day }} order by term_start_date)
        > count(*) over ({{ day }}, term_end_date)
        - count(*) over ({{ day }}, term_end_date order by term_start_date)
        or max(term_end_date) over ({{ day }}, term_start_date) > term_end_date
    )
{%- endmacro %}
