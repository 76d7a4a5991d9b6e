"""The PII policy on one record: keep, hash (keyed, so joins still work) or drop."""

from __future__ import annotations

import copy
import hashlib
import hmac

import pytest

from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.helpers import apply_pii_policy

LICENSE = {
    "addonLicenseId": "123",
    "contactDetails": {
        "company": "Acme",
        "country": "Germany",
        "region": "EMEA",
        "technicalContact": {
            "email": "Ada@Example.com",
            "name": "Ada Lovelace",
            "phone": "+49 89 1234567",
            "address1": "Main St 1",
            "city": "Munich",
            "postcode": "80331",
        },
        "billingContact": {"email": "RTBF", "name": "RTBF"},
    },
    "partnerDetails": {"partnerName": "P", "billingContact": {"email": "p@partner.com"}},
}
FEEDBACK = {"email": "ada@example.com", "fullName": "Ada Lovelace", "message": "too slow"}


def test_keep_changes_nothing() -> None:
    assert apply_pii_policy(LICENSE, "keep") == LICENSE


def test_hash_is_hmac_sha256_keyed_by_the_salt_and_joins_across_record_types() -> None:
    original = copy.deepcopy(LICENSE)
    hashed = apply_pii_policy(LICENSE, "hash", "s3cret")
    assert original == LICENSE  # the record passed in is left alone
    contact = hashed["contactDetails"]["technicalContact"]
    expected = hmac.new(b"s3cret", b"ada@example.com", hashlib.sha256).hexdigest()
    assert contact["email"] == expected
    # Emails compare case-blind, so the license contact and the feedback reporter still join.
    assert apply_pii_policy(FEEDBACK, "hash", "s3cret")["email"] == expected
    assert all(len(contact[f]) == 64 for f in ("name", "phone", "address1", "city", "postcode"))
    assert hashed["contactDetails"]["billingContact"] == {"email": "RTBF", "name": "RTBF"}
    assert hashed["partnerDetails"]["billingContact"]["email"] != "p@partner.com"
    assert {k: hashed["contactDetails"][k] for k in ("company", "country", "region")} == {
        "company": "Acme",
        "country": "Germany",
        "region": "EMEA",
    }
    assert apply_pii_policy(LICENSE, "hash", "other")["contactDetails"] != hashed["contactDetails"]


def test_drop_removes_every_contact_field_and_keeps_company_and_country() -> None:
    dropped = apply_pii_policy(LICENSE, "drop")
    assert dropped["contactDetails"] == {
        "company": "Acme",
        "country": "Germany",
        "region": "EMEA",
        "technicalContact": {},
        "billingContact": {},
    }
    assert apply_pii_policy(FEEDBACK, "drop") == {"message": "too slow"}


def test_hash_without_a_salt_and_an_unknown_mode_are_one_sentence() -> None:
    with pytest.raises(UserError, match='pii = "hash" needs a pii_salt'):
        apply_pii_policy({}, "hash", None)
    with pytest.raises(UserError, match="pii must be keep, hash or drop, not 'mask'"):
        apply_pii_policy({}, "mask")


def test_the_column_list_names_the_same_fields_as_dlt_does() -> None:
    assert "contact_details__technical_contact__email" in settings.PII_COLUMNS
    assert "customer_details__billing_contact__name" in settings.PII_COLUMNS
    assert "partner_details__billing_contact__address1" in settings.PII_COLUMNS
    assert {"email", "full_name"} <= set(settings.PII_COLUMNS)
    assert not [c for c in settings.PII_COLUMNS if "company" in c or "country" in c]
