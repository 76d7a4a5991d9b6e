"""Constants of the Marketplace reporting API and of how we pull from it."""

from __future__ import annotations

import datetime as dt
import re

# The live hosts: the two API generations are served from different places.
DEFAULT_BASE_URLS = {
    "v2": "https://marketplace.atlassian.com",
    "v3": "https://api.atlassian.com/marketplace",
}
API_VERSIONS = tuple(DEFAULT_BASE_URLS)

# The defaults of [sources.marketplace]: the source's signature and config.read_config use these,
# and .dlt/config.toml only documents them, so a default lives in one place.
# v2 is still the generation every vendor has; v3 (developer spaces) is opt-in.
DEFAULT_API_VERSION = "v2"
# Before the Marketplace's reporting data begins, so a first backfill misses nothing.
DEFAULT_START_DATE = "2016-01-01"
# Records are rewritten after the fact and lastUpdated has day granularity: re-read a few days.
DEFAULT_LOOKBACK_DAYS = 3


def base_url_for(api_version: str, base_url: str | None = None) -> str:
    """The host to call: an explicit base_url, else the live host of that API generation."""
    return base_url or DEFAULT_BASE_URLS[api_version]


# The API's documented maximum page size; larger values are clamped or rejected.
PAGE_SIZE = 50

# withDataInsights only applies to licenses that start on or after this day, so a license backfill
# is two exports split here (what both public peers do).
INSIGHTS_START = dt.date(2018, 7, 1)

# Backfill windows for transactions and feedback: a year keeps one export or one paged listing
# small enough that a failure costs little to redo, and the number of exports low.
BACKFILL_WINDOW_MONTHS = 12


# Completeness flags: without them the API silently leaves records out (reference, section 2).
LICENSE_FLAGS: dict[str, str] = {"includeAtlassianLicenses": "true"}
TRANSACTION_FLAGS: dict[str, str] = {
    "includeManualInvoice": "true",
    "excludeZeroTransactions": "false",
}
INSIGHTS_FLAG: dict[str, str] = {"withDataInsights": "true"}

# Retry budget: enough to ride out a burst of 429s or a short outage, bounded so a dead API ends
# in a clear error within about two minutes instead of hanging a scheduled job.
RETRY_ATTEMPTS = 8
RETRY_BUDGET_SECONDS = 120.0
RETRY_INITIAL_WAIT = 0.5
RETRY_MAX_WAIT = 20.0
# A Retry-After larger than this is not honoured in full: the budget above would be gone anyway.
RETRY_AFTER_CAP = 60.0

# Timeouts: connect fast; reads can be slow on large export downloads between chunks.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

# Async exports: peers poll every 5 s; we start faster (small exports finish in seconds) and back
# off to this ceiling. The deadline bounds one run; the export id is kept, so a later run resumes.
EXPORT_POLL_INITIAL = 1.0
EXPORT_POLL_MAX = 15.0
EXPORT_DEADLINE_SECONDS = 1800.0
# A FAILED export is initiated again this many times before the run gives up.
EXPORT_MAX_REINITIATIONS = 2

# Columns typed explicitly: dlt would otherwise keep ISO dates as text and could type an amount
# that happens to be a whole number as bigint (then a variant column on the first fraction).
LICENSE_DATE_COLUMNS = (
    "last_updated",
    "maintenance_start_date",
    "maintenance_end_date",
    "evaluation_start_date",
    "evaluation_end_date",
    "evaluation_sale_date",
    "upgrade_evaluation_start_date",
    "latest_evaluation_start_date",
    "latest_maintenance_start_date",
)
TRANSACTION_DATE_COLUMNS = (
    "last_updated",
    "purchase_details__sale_date",
    "purchase_details__maintenance_start_date",
    "purchase_details__maintenance_end_date",
    "purchase_details__original_transaction_details__sale_date",
)
TRANSACTION_AMOUNT_COLUMNS = (
    "purchase_details__purchase_price",
    "purchase_details__vendor_amount",
    "purchase_details__partner_discount_amount",
)
FEEDBACK_DATE_COLUMNS = ("date",)
METRIC_EVENT_DATE_COLUMNS = (
    "last_updated",
    "event_date",
    "period_start",
    "license_details__maintenance_start_date",
    "license_details__maintenance_end_date",
)

# Metric endpoints: the series names Atlassian uses, and the extra query each needs.
METRICS = ("churn", "renewal", "conversion")
METRIC_AGGREGATE_PARAMS: dict[str, dict[str, str]] = {
    "churn": {"aggregation": "month"},
    "renewal": {"aggregation": "month"},
    # Without groupBy the conversion series mixes net-new and upgrade evaluations.
    "conversion": {"aggregation": "month", "groupBy": "conversionType"},
}

# Attribution rows cover the 30 days of page activity before an evaluation and are published
# when the evaluation starts, so they arrive up to this many days after their eventTimestamp.
ATTRIBUTION_ARRIVES_LATE_DAYS = 30

RESOURCES = (
    "licenses",
    "transactions",
    "feedback",
    "marketing_attribution",
    "metric_aggregates",
    "metric_events",
)

# The column that says whose row it is: several vendors can share one dataset, and every key
# includes it. Old rows (a warehouse from before it) get it once from the runner.
VENDOR_COLUMN = "vendor_id"

# Not a resource a user picks: always loaded with any of the above, it dates the run by the
# API's clock so that dbt can cap as_of_date at the load day.
LOAD_DAYS_RESOURCE = "load_days"

# A saved export id older than this is not resumed: it describes old data and may have expired.
EXPORT_RESUME_MAX_AGE_HOURS = 12

# Records per list handed to dlt: per-item overhead dominates below a few hundred.
BATCH_SIZE = 1000
# Metric events re-read this many months before the latest data day: a refund or a late
# decision can still change an event that recent. Aggregates are re-read whole (3 small calls).
METRIC_EVENTS_TRAILING_MONTHS = 6
# A progress line every this many records of a long download.
PROGRESS_EVERY = 100_000

# ---- PII policy (`pii` in [sources.marketplace]) -----------------------------------------------
# Contact details (names, emails, phones, postal addresses) are kept as sent, hashed, or dropped
# before anything is written; company, country and region stay (reports group by them). `hash`
# is HMAC-SHA256 keyed by the secret `pii_salt`: equal values give equal hashes, so joins and
# distinct counts still work, and without the salt a hash cannot be checked against a guess.
PII_MODES = ("keep", "hash", "drop")
DEFAULT_PII = "keep"
# The objects that hold contacts: contactDetails (licenses), customerDetails (transactions),
# partnerDetails (both, its billingContact).
PII_CONTACT_HOLDERS = ("contactDetails", "customerDetails", "partnerDetails")
PII_CONTACTS = ("technicalContact", "billingContact")
PII_CONTACT_FIELDS = ("email", "name", "phone", "address1", "address2", "city", "state", "postcode")
# Fields of the record itself: feedback's reporter.
PII_RECORD_FIELDS = ("email", "fullName")
# Right-to-be-forgotten contacts already carry this marker instead of a value: kept as is.
PII_FORGOTTEN = "RTBF"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# The same fields as the column names dlt gives them, for a path that applies the policy to
# columns (an Arrow table) instead of records: both must remove exactly these.
PII_COLUMNS = tuple(
    f"{_snake(holder)}__{_snake(contact)}__{field}"
    for holder in PII_CONTACT_HOLDERS
    for contact in PII_CONTACTS
    for field in PII_CONTACT_FIELDS
) + tuple(_snake(field) for field in PII_RECORD_FIELDS)
